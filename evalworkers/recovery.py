"""Recovering work from lost and stuck workers, run by the scheduler every RECOVERY_INTERVAL_S.

A running cell is handed back to its queue when its lease went stale (the worker stopped proving itself alive for
WORKER_LOST_AFTER_S: killed, its machine gone) or when it stored no sample for CELL_STALL_AFTER_S (the worker lives
but the cell is stuck). Taking a cell is one conditional update on the lease it had, so two schedulers, or a
scheduler racing a late re-delivery, hand it on exactly once; the next run resumes it (stored samples are skipped).
Each hand-over is an event in the submission's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from leaderboard.models import (
    Cell,
    CellStatus,
    EventAction,
    ModelKind,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
    TaskRecord,
)


@dataclass(frozen=True)
class HandedOn:
    """A cell (or a submission's start) taken from a lost or stuck worker: send ``task`` with ``task_id`` on
    ``queue``."""

    task: str  # "run_cell" or "start_submission"
    task_id: int
    queue: str
    reason: str


def _age(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else f"{(now - moment).total_seconds():.0f} s ago"


def lost_cells(now: datetime | None = None) -> list[HandedOn]:
    """Take every running cell of a running submission whose worker is lost or whose progress stalled."""
    now = now or timezone.now()
    lost_before = now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    stalled_before = now - timedelta(seconds=settings.CELL_STALL_AFTER_S)
    stale = (Cell.objects.filter(status=CellStatus.RUNNING, submission__status=SubmissionStatus.RUNNING)
             .filter(Q(heartbeat_at__lt=lost_before) | Q(heartbeat_at__isnull=True, started_at__lt=lost_before)
                     | Q(progress_at__lt=stalled_before))
             .select_related("submission__model", "task"))
    handed: list[HandedOn] = []
    for cell in stale:
        alive = cell.heartbeat_at is not None and cell.heartbeat_at >= lost_before
        reason = (f"{cell.task.key} @ {cell.length:,} tokens ({cell.method}, budget {cell.budget:g}): "
                  + (f"no sample stored for {settings.CELL_STALL_AFTER_S:.0f} s on {cell.worker or 'a worker'}"
                     if alive else f"worker {cell.worker or '(unknown)'} lost, last seen "
                                   f"{_age(cell.heartbeat_at, now)}")
                  + f"; re-queued with {cell.samples_done} of {cell.samples_total} samples kept")
        with transaction.atomic():
            taken = Cell.objects.filter(pk=cell.pk, status=CellStatus.RUNNING, lease=cell.lease).update(
                status=CellStatus.PENDING, lease="", worker="", heartbeat_at=None,
                recoveries=F("recoveries") + 1)
            if taken:
                SubmissionEvent.objects.create(submission=cell.submission, action=EventAction.RECOVERED,
                                               note=reason[:2000])
        if taken:
            handed.append(HandedOn("run_cell", cell.pk, ModelKind(cell.submission.model.kind).queue, reason))
    return handed


def stalled_starts(now: datetime | None = None) -> list[HandedOn]:
    """Re-send the start of a running submission that has no cells long after it started (its worker died during
    the pre-flight check): longer than the probe's retry window plus WORKER_LOST_AFTER_S and five minutes."""
    now = now or timezone.now()
    wait_s = settings.EVAL_PROBE_RETRY_S + settings.WORKER_LOST_AFTER_S + 300.0
    before = now - timedelta(seconds=wait_s)
    handed: list[HandedOn] = []
    for sub in Submission.objects.filter(status=SubmissionStatus.RUNNING, cells_total=0, started_at__lt=before,
                                         cells__isnull=True).select_related("model"):
        with transaction.atomic():
            taken = Submission.objects.filter(pk=sub.pk, started_at=sub.started_at).update(started_at=now)
            if taken:
                reason = f"its start made no cells in {wait_s:.0f} s (the worker was lost); started again"
                SubmissionEvent.objects.create(submission=sub, action=EventAction.RECOVERED, note=reason)
        if taken:
            handed.append(HandedOn("start_submission", sub.pk, ModelKind(sub.model.kind).queue, reason))
    return handed


CHECKS_KEPT_S = 3600.0


def forget_old_checks(now: datetime | None = None) -> int:
    """Delete the task records of recovery checks older than an hour (one every RECOVERY_INTERVAL_S would
    otherwise grow the table by thousands a day); the queue page needs only the latest."""
    before = (now or timezone.now()) - timedelta(seconds=CHECKS_KEPT_S)
    deleted, _ = TaskRecord.objects.filter(task_name="evalworkers.tasks.recover_lost_work",
                                           created_at__lt=before).delete()
    return deleted
