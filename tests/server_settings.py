"""Settings of the daphne the suite starts (``asgi_server``): the real settings, with the
suite's fast password hasher. A browser test logs in through the login form, so the server
checks the password the test process hashed; with the real hasher (PBKDF2, slow on purpose)
every browser test paid for it twice: once making the users, once logging in."""

from croplayer_site.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
