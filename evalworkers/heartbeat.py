"""Worker liveness rows."""

from __future__ import annotations

from django.utils import timezone

from leaderboard.models import WorkerHeartbeat


def beat(*, worker: str, queue: str) -> str:
    WorkerHeartbeat.objects.update_or_create(worker=worker, queue=queue, defaults={"seen_at": timezone.now()})
    return worker
