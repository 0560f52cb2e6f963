"""Actions on a submission by its owner or by staff. Each one is logged as a SubmissionEvent.

Workers are reached by task name (send_task), so the web never imports worker code.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from evalworkers.celery import app as celery_app
from leaderboard import rows
from leaderboard.models import (
    Cell,
    CellStatus,
    EventAction,
    ModelKind,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
    Visibility,
)

START_TASK = "evalworkers.tasks.start_submission"


class ActionNotAllowed(ValidationError):
    """The submission's state does not allow this action; the message says why and what to do."""


def _log(sub: Submission, actor: AbstractBaseUser | None, action: str, note: str = "") -> None:
    SubmissionEvent.objects.create(submission=sub, actor=actor, action=action, note=note)


def _locked(sub: Submission) -> Submission:
    return Submission.objects.select_for_update().get(pk=sub.pk)


def enqueue_start(sub: Submission) -> None:
    """Start the submission once this transaction commits, on its kind's queue (``ModelKind.queue``)."""
    submission_id, queue = sub.pk, ModelKind(sub.model.kind).queue
    transaction.on_commit(lambda: celery_app.send_task(START_TASK, args=[submission_id], queue=queue))


@transaction.atomic
def approve(sub: Submission, actor: AbstractBaseUser | None) -> Submission:
    sub = _locked(sub)
    if sub.status != SubmissionStatus.PENDING_REVIEW:
        raise ActionNotAllowed(f"Submission #{sub.pk} is {sub.get_status_display().lower()}, not pending review.")
    sub.status = SubmissionStatus.QUEUED
    sub.queued_at = timezone.now()
    sub.save(update_fields=["status", "queued_at"])
    _log(sub, actor, EventAction.APPROVED)
    enqueue_start(sub)
    return sub


@transaction.atomic
def reject(sub: Submission, actor: AbstractBaseUser | None, reason: str) -> Submission:
    sub = _locked(sub)
    if sub.status != SubmissionStatus.PENDING_REVIEW:
        raise ActionNotAllowed(f"Submission #{sub.pk} is {sub.get_status_display().lower()}, not pending review.")
    if not reason.strip():
        raise ActionNotAllowed("Give the submitter a reason for the rejection.")
    sub.end(SubmissionStatus.REJECTED, reason=reason, actor=actor)
    return sub


@transaction.atomic
def cancel(sub: Submission, actor: AbstractBaseUser | None) -> Submission:
    """Workers see the status between samples and stop; results so far are kept."""
    sub = _locked(sub)
    if sub.status not in SubmissionStatus.active():
        raise ActionNotAllowed(
            f"Submission #{sub.pk} is {sub.get_status_display().lower()}; "
            "only a queued or running one can be cancelled."
        )
    sub.end(SubmissionStatus.CANCELLED, actor=actor)
    Cell.objects.filter(submission=sub).exclude(status__in=CellStatus.ended()).update(
        status=CellStatus.CANCELLED, finished_at=timezone.now()
    )
    return sub


@transaction.atomic
def rerun(sub: Submission, actor: AbstractBaseUser | None) -> Submission:
    """Replace cleanly: the old cells and samples go, the run number and the event log keep the history."""
    sub = _locked(sub)
    if sub.status not in (SubmissionStatus.COMPLETED, SubmissionStatus.FAILED, SubmissionStatus.CANCELLED):
        raise ActionNotAllowed(
            f"Submission #{sub.pk} is {sub.get_status_display().lower()}; only a completed, failed or cancelled "
            "one can be re-run."
        )
    sub.cells.all().delete()
    sub.status = SubmissionStatus.QUEUED
    sub.run_number += 1
    sub.failure_reason = ""
    sub.probe_result = {}
    sub.cells_total = sub.cells_done = sub.samples_total = sub.samples_done = sub.samples_errored = 0
    sub.queued_at = timezone.now()
    sub.started_at = sub.finished_at = None
    sub.save()
    rows.recompute(sub.pk)  # a queued submission has no leaderboard rows until the new run completes
    _log(sub, actor, EventAction.RERUN, f"run {sub.run_number}")
    enqueue_start(sub)
    return sub


@transaction.atomic
def set_visibility(sub: Submission, actor: AbstractBaseUser | None, visibility: str, note: str = "") -> Submission:
    sub = _locked(sub)
    if visibility not in Visibility.values:
        raise ActionNotAllowed(f"Unknown visibility {visibility!r}.")
    if visibility == Visibility.FLAGGED and not note.strip():
        raise ActionNotAllowed("A flag needs a public note that says what is wrong with the result.")
    sub.visibility = visibility
    sub.public_note = note if visibility == Visibility.FLAGGED else sub.public_note
    sub.save(update_fields=["visibility", "public_note"])
    rows.refresh_visibility(sub.pk)
    action = {Visibility.HIDDEN: EventAction.HIDDEN, Visibility.FLAGGED: EventAction.FLAGGED,
              Visibility.PUBLIC: EventAction.SHOWN}[visibility]
    _log(sub, actor, action, note)
    return sub


def hide(sub: Submission, actor: AbstractBaseUser | None) -> Submission:
    return set_visibility(sub, actor, Visibility.HIDDEN)


def flag(sub: Submission, actor: AbstractBaseUser | None, note: str) -> Submission:
    return set_visibility(sub, actor, Visibility.FLAGGED, note)


@transaction.atomic
def withdraw(sub: Submission, actor: AbstractBaseUser | None) -> Submission:
    """The submitter takes a completed result off the public leaderboard (staff can make it public again)."""
    sub = _locked(sub)
    if sub.status != SubmissionStatus.COMPLETED:
        raise ActionNotAllowed(
            f"Submission #{sub.pk} is {sub.get_status_display().lower()}; only a completed one can be withdrawn "
            "(cancel a queued or running one instead)."
        )
    if sub.visibility == Visibility.HIDDEN:
        raise ActionNotAllowed(f"Submission #{sub.pk} is already off the leaderboard.")
    sub.visibility = Visibility.HIDDEN
    sub.save(update_fields=["visibility"])
    rows.refresh_visibility(sub.pk)
    _log(sub, actor, EventAction.WITHDRAWN)
    return sub


@transaction.atomic
def set_baseline(sub: Submission, actor: AbstractBaseUser | None, baseline: bool) -> Submission:
    """Baselines are reference points the leaderboard shows apart (shaded), e.g. well-known open models."""
    sub = _locked(sub)
    if sub.is_baseline == baseline:
        raise ActionNotAllowed(f"Submission #{sub.pk} is {'already' if baseline else 'not'} a baseline.")
    sub.is_baseline = baseline
    sub.save(update_fields=["is_baseline"])
    rows.refresh_visibility(sub.pk)
    _log(sub, actor, EventAction.BASELINE if baseline else EventAction.UNBASELINE)
    return sub
