"""What the queue page and a submission's page say about the workers: who is alive, lost or stopped, what each
one runs, which cell each recent task is for, and what holds a submission up while no worker works on it.

Workers write their own heartbeats (``evalworkers/liveness.py``); a worker not seen for WORKER_LOST_AFTER_S is
lost, and the scheduler hands its cells on (``evalworkers/recovery.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from leaderboard.models import (
    Cell,
    CellStatus,
    ModelKind,
    Submission,
    SubmissionStatus,
    TaskRecord,
    TaskState,
    WorkerHeartbeat,
)

MAX_WORKERS = 50
RECENT_TASKS = 20
RECOVERY_TASK = "evalworkers.tasks.recover_lost_work"
HEARTBEAT_TASK = "evalworkers.tasks.heartbeat"


def lost_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)


@dataclass(frozen=True)
class RunningCell:
    """A cell a worker holds: its submission, task, length, KV point and since when (and its last heartbeat)."""

    cell_id: int
    submission_id: int
    worker: str
    task: str
    length: int
    method: str
    budget: float
    since: datetime | None
    heartbeat_at: datetime | None

    @property
    def label(self) -> str:
        point = "" if self.method == "full" else f", {self.method} at {self.budget:g}"
        return f"{self.task} @ {self.length:,} tokens{point}"

    def as_json(self) -> dict:
        return {"cell": self.cell_id, "submission": self.submission_id, "task": self.task, "length": self.length,
                "method": self.method, "budget": self.budget, "label": self.label,
                "since": self.since.isoformat() if self.since else None}


@dataclass(frozen=True)
class WorkerRow:
    """One worker on one queue; ``state`` is alive, lost (not seen for WORKER_LOST_AFTER_S) or stopped."""

    worker: str
    queue: str
    seen_at: datetime
    state: str
    seen_s_ago: float
    running: list[RunningCell] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"worker": self.worker, "queue": self.queue, "seen_at": self.seen_at.isoformat(),
                "seen_s_ago": round(self.seen_s_ago), "state": self.state, "alive": self.state == "alive",
                "running": [r.as_json() for r in self.running]}


def _running(cells: Iterable[Cell]) -> list[RunningCell]:
    return [RunningCell(c.pk, c.submission_id, c.worker, c.task.key, c.length, c.method, c.budget, c.started_at,
                        c.heartbeat_at) for c in cells]


def worker_rows(now: datetime | None = None) -> list[WorkerRow]:
    """Every worker that reported, alive ones first, with the cells each one runs (its lease fresh: a cell whose
    run died is in ``lost_cells``, even when a new worker took the dead one's name) on each of its queues."""
    now = now or timezone.now()
    beats = list(WorkerHeartbeat.objects.order_by("-seen_at")[:MAX_WORKERS])
    held = Cell.objects.filter(status=CellStatus.RUNNING, worker__in={b.worker for b in beats},
                               heartbeat_at__gte=lost_before(now)).select_related(
        "task", "submission__model").order_by("started_at")
    by_worker: dict[tuple[str, str], list[Cell]] = {}
    for cell in held:
        by_worker.setdefault((cell.worker, ModelKind(cell.submission.model.kind).queue), []).append(cell)
    cutoff = lost_before(now)
    rows = [WorkerRow(worker=b.worker, queue=b.queue, seen_at=b.seen_at,
                      state="stopped" if b.stopped_at else "alive" if b.seen_at >= cutoff else "lost",
                      seen_s_ago=(now - b.seen_at).total_seconds(),
                      running=_running(by_worker.get((b.worker, b.queue), [])))
            for b in beats]
    order = {"alive": 0, "lost": 1, "stopped": 2}
    return sorted(rows, key=lambda r: (order[r.state], r.queue, r.worker))


def lost_cells(now: datetime | None = None) -> list[RunningCell]:
    """Running cells whose run stopped proving itself alive: the scheduler hands them on at its next check."""
    cutoff = lost_before(now or timezone.now())
    stale = Cell.objects.filter(status=CellStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)).select_related("task")
    return _running(stale.order_by("heartbeat_at")[:MAX_WORKERS])


@dataclass(frozen=True)
class SchedulerState:
    """When the scheduler's recovery last ran (from its task records), and whether that is recent enough."""

    last_run_at: datetime | None
    interval_s: float
    late: bool

    @property
    def sentence(self) -> str:
        if self.last_run_at is None:
            return ("The scheduler has not run a recovery check yet: is `celery beat` running, with a worker on "
                    "the `control` queue?")
        ago = (timezone.now() - self.last_run_at).total_seconds()
        if self.late:
            return (f"The scheduler's last recovery check ran {ago:.0f} s ago, though it runs every "
                    f"{self.interval_s:.0f} s: is `celery beat` running, with a worker on the `control` queue?")
        return (f"The scheduler checks for lost and stuck work every {self.interval_s:.0f} s; last check "
                f"{ago:.0f} s ago.")


def scheduler_state(now: datetime | None = None) -> SchedulerState:
    now = now or timezone.now()
    last = (TaskRecord.objects.filter(task_name=RECOVERY_TASK, state=TaskState.SUCCEEDED)
            .order_by("-finished_at").values_list("finished_at", flat=True).first())
    interval = settings.RECOVERY_INTERVAL_S
    return SchedulerState(last, interval, last is None or (now - last).total_seconds() > 3 * interval + 5)


def live_queues(now: datetime | None = None) -> set[str]:
    """The queues at least one live worker consumes."""
    cutoff = lost_before(now or timezone.now())
    return set(WorkerHeartbeat.objects.filter(seen_at__gte=cutoff, stopped_at__isnull=True)
               .values_list("queue", flat=True))


@dataclass(frozen=True)
class TaskLine:
    """A recent task, named for what it works on (a cell, or a submission's start)."""

    record: TaskRecord
    subject: str
    submission_id: int | None


def recent_tasks(limit: int = RECENT_TASKS) -> list[TaskLine]:
    """The latest tasks that work on submissions (the scheduler's checks and heartbeats are summarised apart)."""
    records = list(TaskRecord.objects.exclude(task_name__in=[RECOVERY_TASK, HEARTBEAT_TASK])[:limit])
    cell_ids = {r.args[0] for r in records if r.task_name.endswith(".run_cell") and r.args}
    cells = {c.pk: c for c in Cell.objects.filter(pk__in=cell_ids).select_related("task")}
    lines = []
    for r in records:
        first = r.args[0] if r.args and isinstance(r.args[0], int) else None
        if r.task_name.endswith(".run_cell") and first in cells:
            cell = cells[first]
            running = _running([cell])[0]
            lines.append(TaskLine(r, f"cell {running.label} of submission #{cell.submission_id}",
                                  cell.submission_id))
        elif r.task_name.endswith(".start_submission") and first is not None:
            lines.append(TaskLine(r, f"start of submission #{first} (pre-flight check, grid)", first))
        elif r.task_name.endswith(".recover_lost_work"):
            lines.append(TaskLine(r, "recovery of lost and stuck work (scheduled)", None))
        elif r.task_name.endswith(".heartbeat"):
            lines.append(TaskLine(r, f"heartbeat on {r.queue or 'a queue'}", None))
        else:
            lines.append(TaskLine(r, r.task_name.rsplit(".", 1)[-1], None))
    return lines


def hold_up(sub: Submission, cells: Sequence[Cell], now: datetime | None = None) -> str:
    """Why no worker is working on a queued or running submission right now, in a sentence; "" when workers are
    (then the page shows an estimate instead)."""
    if sub.status not in (SubmissionStatus.QUEUED, SubmissionStatus.RUNNING):
        return ""
    now = now or timezone.now()
    cutoff = lost_before(now)
    stale = [c for c in cells if c.status == CellStatus.RUNNING
             and (c.heartbeat_at or c.started_at or now) < cutoff]
    if stale:
        cell = stale[0]
        seen = f"{(now - (cell.heartbeat_at or cell.started_at or now)).total_seconds():.0f} s ago"
        return (f"Recovering {len(stale)} cell{'s' if len(stale) > 1 else ''} from a lost worker "
                f"(its run on {cell.worker or 'a worker'} last proved itself alive {seen}): within about "
                f"{settings.RECOVERY_INTERVAL_S:.0f} s {'they go' if len(stale) > 1 else 'it goes'} back to the "
                "queue and resume where they stopped, keeping every stored sample.")
    queue = ModelKind(sub.model.kind).queue
    if queue not in live_queues(now):
        return (f"Waiting for a worker: none is consuming the `{queue}` queue right now. The evaluation goes on "
                "when one starts; nothing is lost meanwhile.")
    recovered = [c for c in cells if c.status == CellStatus.PENDING and c.recoveries]
    if recovered and not any(c.status == CellStatus.RUNNING for c in cells):
        return (f"Recovering: {len(recovered)} cell{'s' if len(recovered) > 1 else ''} taken from a lost worker "
                "wait for a free worker, and resume where they stopped.")
    return ""

