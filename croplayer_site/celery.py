"""The Celery app: tasks live in each Django app's ``tasks.py``; queues ``cpu`` and ``gpu``."""

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
os.environ.setdefault("OMP_NUM_THREADS", "1")

app = Celery("croplayer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _liveness_start(sender: Any = None, **_: Any) -> None:
    """Every worker beats its liveness key (croplayer_site/liveness.py) while it runs."""
    from croplayer_site import liveness

    amqp = sender.app.amqp
    queues = list(amqp.queues.consume_from or amqp.queues)
    liveness.beat_start(hostname=sender.hostname, queues=queues)


@worker_shutdown.connect
def _liveness_stop(**_: Any) -> None:
    from croplayer_site import liveness

    liveness.beat_stop()
