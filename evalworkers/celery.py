"""The Celery app shared by every worker (queues `api` and `gpu`).

Settings come from Django's settings with namespace="CELERY": a missing namespace silently
drops every CELERY_* setting, including acks_late and the queues.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("longctx")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["evalworkers"])
