"""Keep TaskRecord (this app's model) current from Celery's signals, so the web can show what the workers are doing.

Handlers never raise: bookkeeping must not fail a task or a publish.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from django.db import DatabaseError
from django.utils import timezone

log = logging.getLogger(__name__)
OUR_PREFIX = "evalworkers."


def _record(task_id: str | None, **fields: Any) -> None:
    from leaderboard.models import TaskRecord

    if not task_id:
        return
    try:
        TaskRecord.objects.update_or_create(task_id=task_id, defaults=fields)
    except DatabaseError:
        log.warning("could not record state of task %s", task_id, exc_info=True)


@signals.before_task_publish.connect
def on_publish(sender: str | None = None, headers: dict | None = None, body: Any = None,
               routing_key: str = "", **_: Any) -> None:
    headers = headers or {}
    if not (sender or "").startswith(OUR_PREFIX):
        return
    args = list(body[0]) if isinstance(body, list | tuple) and body and isinstance(body[0], list | tuple) else []
    _record(headers.get("id"), task_name=sender, queue=routing_key or "", state="queued", args=args)


@signals.task_prerun.connect
def on_prerun(task_id: str | None = None, task: Any = None, args: tuple = (), **_: Any) -> None:
    if task is None or not task.name.startswith(OUR_PREFIX):
        return
    delivery = getattr(task.request, "delivery_info", None) or {}
    _record(task_id, task_name=task.name, state="started", started_at=timezone.now(),
            worker=task.request.hostname or "", queue=delivery.get("routing_key") or "", args=list(args))


@signals.task_postrun.connect
def on_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    if task is None or not task.name.startswith(OUR_PREFIX):
        return
    mapped = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retrying", "REVOKED": "revoked"}
    _record(task_id, state=mapped.get(state or "", "succeeded"), finished_at=timezone.now())


@signals.task_failure.connect
def on_failure(task_id: str | None = None, exception: BaseException | None = None, sender: Any = None,
               **_: Any) -> None:
    if sender is None or not sender.name.startswith(OUR_PREFIX):
        return
    _record(task_id, state="failed", error=f"{type(exception).__name__}: {exception}"[:2000],
            finished_at=timezone.now())


@signals.task_revoked.connect
def on_revoked(request: Any = None, **_: Any) -> None:
    if request is not None:
        _record(getattr(request, "id", None), state="revoked", finished_at=timezone.now())
