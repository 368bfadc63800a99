"""The Celery app: tasks live in each Django app's ``tasks.py``; queues ``cpu`` and ``gpu``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
os.environ.setdefault("OMP_NUM_THREADS", "1")

app = Celery("croplayer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
