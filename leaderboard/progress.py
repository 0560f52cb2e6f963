"""What a submission's status page says: the status in plain words, queue position, a rough ETA, progress.

One ``snapshot`` feeds both the page and the small JSON view it polls, so they never disagree. What a
viewer sees depends on who they are: the owner and staff see the reasons, the probe and the error lines
(which may name the endpoint); everyone else sees only what is public.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median
from typing import Any, Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from leaderboard import workers
from leaderboard.models import (
    Cell,
    CellStatus,
    EventAction,
    SampleResult,
    Submission,
    SubmissionStatus,
    Visibility,
)

Role = Literal["owner", "staff", "public"]
RECENT_RUNS = 20  # completed submissions whose durations make the typical run time
ERROR_LINES = 3  # last distinct sample errors shown per failed cell


def role_of(user: AbstractBaseUser | AnonymousUser, sub: Submission) -> Role:
    if user.is_authenticated and user.is_staff:
        return "staff"
    if user.is_authenticated and sub.submitter_id == user.pk:
        return "owner"
    return "public"


def can_see(role: Role, sub: Submission) -> bool:
    """A withdrawn or hidden submission is visible to its owner and staff only."""
    return role != "public" or sub.visibility != Visibility.HIDDEN


def queue_position(sub: Submission) -> int | None:
    """How many queued submissions were created before this one (None unless it is queued)."""
    if sub.status != SubmissionStatus.QUEUED:
        return None
    return Submission.objects.filter(status=SubmissionStatus.QUEUED, model__kind=sub.model.kind).filter(
        Q(created_at__lt=sub.created_at) | Q(created_at=sub.created_at, pk__lt=sub.pk)).count()


def typical_duration(sub: Submission) -> timedelta | None:
    """The median run time of recent completed submissions of the same kind, on this version if any."""
    done = Submission.objects.filter(status=SubmissionStatus.COMPLETED, model__kind=sub.model.kind,
                                     started_at__isnull=False, finished_at__gte=F("started_at"))
    for scope in (done.filter(version=sub.version_id), done):
        spans = [f - s for s, f in scope.order_by("-finished_at").values_list("started_at", "finished_at")[
            :RECENT_RUNS]]
        if spans:
            return timedelta(seconds=median(span.total_seconds() for span in spans))
    return None


def humanize(seconds: float) -> str:
    if seconds < 90:
        return "about a minute" if seconds > 30 else "less than a minute"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {round(minutes)} minutes"
    hours = minutes / 60
    if hours < 36:
        return f"about {round(hours)} hours"
    return f"about {round(hours / 24)} days"


def estimate(sub: Submission, done: int, total: int, position: int | None,
             now: datetime) -> dict[str, Any]:
    """Seconds to completion and a sentence; from the run's own pace once it has one, else from past runs."""
    if sub.status == SubmissionStatus.RUNNING and done and total and sub.started_at:
        elapsed = (now - sub.started_at).total_seconds()
        left = elapsed / done * (total - done)
        return {"seconds": round(left), "text": f"{humanize(left)} at the current pace"}
    if sub.status in (SubmissionStatus.QUEUED, SubmissionStatus.RUNNING):
        typical = typical_duration(sub)
        if typical is None:
            return {"seconds": None, "text": "unknown: no comparable submission has finished yet"}
        runs = (position or 0) + 1 if sub.status == SubmissionStatus.QUEUED else 1
        left = typical.total_seconds() * runs
        return {"seconds": round(left), "text": f"{humanize(left)} (from recent runs; a rough guess)"}
    return {"seconds": None, "text": ""}


def _eta(sub: Submission, cells: list[Cell], done: int, total: int, position: int | None,
         now: datetime) -> dict[str, Any]:
    """The estimate, or, while no worker works on the submission, why not (``workers.hold_up``): an estimate
    from a pace nobody keeps would promise what does not happen."""
    held = workers.hold_up(sub, cells, now)
    return {"seconds": None, "text": held, "held": True} if held else estimate(sub, done, total, position, now)


def explanation(sub: Submission, role: Role, position: int | None) -> str:
    """The status in plain words, with what happens next or what to do."""
    private = role != "public"
    status = sub.status
    if status == SubmissionStatus.PENDING_REVIEW:
        return ("Waiting for a maintainer to approve it before it uses the evaluation workers. Nothing is "
                "needed from you; the decision will appear here.")
    if status == SubmissionStatus.QUEUED:
        ahead = "no submission is" if not position else f"{position} submission{'s are' if position > 1 else ' is'}"
        return (f"Waiting for a free evaluation worker; {ahead} ahead of it. When a worker takes it, it first "
                "probes the endpoint, then runs every task at every length.")
    if status == SubmissionStatus.RUNNING:
        if not sub.cells_total and not sub.cells.exists():
            return ("A worker took it and is probing the endpoint: is it reachable, does it answer, is its context "
                    "long enough.")
        return "Running: workers are sending the benchmark's samples and scoring the answers."
    if status == SubmissionStatus.COMPLETED:
        if sub.visibility == Visibility.HIDDEN:
            return "Completed, and withdrawn from the public leaderboard."
        if sub.visibility == Visibility.FLAGGED:
            return f"Completed. The maintainers flagged the result: {sub.public_note}"
        return "Completed: its scores are on the leaderboard."
    if status == SubmissionStatus.FAILED:
        if private:
            return ("The evaluation stopped because of the problem below. Fix it and submit again; failed "
                    "submissions do not count against your quota.")
        return "The evaluation failed; its submitter can see why."
    if status == SubmissionStatus.CANCELLED:
        return "Cancelled. Results scored before the cancellation are kept but not ranked."
    if status == SubmissionStatus.REJECTED:
        return f"A maintainer rejected it: {sub.failure_reason}" if private else "A maintainer rejected it."
    return ""


def _failed_cell_errors(sub: Submission, cells: list[Cell]) -> dict[int, list[str]]:
    failed = [c.pk for c in cells if c.status in (CellStatus.FAILED, CellStatus.OOM)]
    lines: dict[int, list[str]] = {pk: [] for pk in failed}
    if not failed:
        return lines
    for cell_id, error in (SampleResult.objects.filter(cell_id__in=failed).exclude(error="")
                           .order_by("cell_id", "-index").values_list("cell_id", "error")):
        if error not in lines[cell_id] and len(lines[cell_id]) < ERROR_LINES:
            lines[cell_id].append(error)
    return lines


def snapshot(sub: Submission, role: Role, now: datetime | None = None) -> dict[str, Any]:
    """Everything the status page shows and the poll returns; only public facts unless ``role`` is private."""
    now = now or timezone.now()
    private = role != "public"
    cells = list(sub.cells.select_related("task").order_by("task__key", "length", "method", "-budget"))
    errors = _failed_cell_errors(sub, cells) if private else {}
    done = sum(c.samples_done for c in cells)
    total = sum(c.samples_total for c in cells) or sub.samples_total
    errored = sum(c.samples_errored for c in cells)
    position = queue_position(sub)
    data: dict[str, Any] = {
        "id": sub.pk, "status": sub.status, "status_label": sub.get_status_display(),
        "explanation": explanation(sub, role, position), "ended": sub.status in SubmissionStatus.ended(),
        "queue_position": position, "eta": _eta(sub, cells, done, total, position, now),
        "samples_done": done, "samples_total": total, "samples_errored": errored,
        "no_final_answer": sum(c.no_final_answer for c in cells),
        "percent": round(100 * done / total, 1) if total else 0.0,
        "cells_done": sum(c.status in CellStatus.ended() for c in cells), "cells_total": len(cells),
        "cells": [{
            "id": c.pk, "task": c.task.key, "length": c.length, "method": c.method, "budget": c.budget,
            "status": c.status, "done": c.samples_done,
            "status_label": c.get_status_display() + (f" — {c.answer_note}" if c.answer_note else ""),
            "total": c.samples_total, "errored": c.samples_errored,
            **({"error": c.error, "last_errors": errors.get(c.pk, [])} if private else {}),
        } for c in cells],
        "results_url": (reverse("leaderboard:model", args=[sub.pk])
                        if sub.status == SubmissionStatus.COMPLETED and sub.visibility != Visibility.HIDDEN
                        else None),
        "visibility": sub.visibility, "public_note": sub.public_note,
        "created_at": sub.created_at.isoformat(),
        "started_at": sub.started_at.isoformat() if sub.started_at else None,
        "finished_at": sub.finished_at.isoformat() if sub.finished_at else None,
    }
    if private:
        probe = sub.probe_result or {}
        data.update(
            failure_reason=sub.failure_reason,
            probe={k: probe.get(k) for k in ("ok", "code", "message", "latency_s", "server_context")} if probe
            else None,
            dialect=sub.dialect_notes,
            api_key_stored=sub.has_api_key,
        )
    return data


def events_for(sub: Submission, role: Role) -> list[dict[str, Any]]:
    """The action log: who and when for the owner and staff; the public sees roles, not names, and no reasons
    except a flag's public note (failure and rejection notes may name the endpoint)."""
    out = []
    for e in sub.events.select_related("actor"):
        if role != "public":
            who = e.actor.get_username() if e.actor else "the system"
            note = e.note
        else:
            who = ("the system" if e.actor is None else "the submitter" if e.actor_id == sub.submitter_id
                   else "a maintainer")
            note = e.note if e.action == EventAction.FLAGGED else ""
        out.append({"action": e.get_action_display(), "who": who, "at": e.created_at, "note": note})
    return out
