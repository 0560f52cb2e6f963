"""The evaluation loop with the database: start a submission, run one cell, finish the submission.

Every write is an idempotent upsert or a conditional update, so a re-delivered task (worker killed,
acks_late) resumes where the last one stopped and never scores a sample twice.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from evalworkers import prompt_sizing, targets
from evalworkers.backends import CircuitBreaker
from evalworkers.benchmark import SpecError
from evalworkers.efficiency import Efficiency
from evalworkers.evaluation import (
    CellSummary,
    SampleOutcome,
    StoredSample,
    TurnSummary,
    evaluate_cell,
    first_missing,
    summarize,
)
from evalworkers.liveness import Lease
from evalworkers.storable import storable_outcome
from evalworkers.targets import GridPoint, Preflight, SubmissionNotRunnable
from evalworkers.targets.local import oom_message
from leaderboard import rows
from leaderboard.models import (
    Cell,
    CellStatus,
    EventAction,
    SampleResult,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
)

EFFICIENCY_FIELDS = tuple(f.name for f in dataclasses.fields(Efficiency))
TURN_FIELDS = tuple(f.name for f in dataclasses.fields(TurnSummary))
log = logging.getLogger(__name__)
FLUSH_EVERY_S = 0.5  # results are written, and cancellation checked, at least this often...
FLUSH_EVERY_SAMPLES = 128  # ...or every this many samples
STORE_ATTEMPTS = 3  # a batch whose write fails is retried this many times in all...
STORE_BACKOFF_S = 0.5  # ...waiting this long, doubled each time, between tries


@dataclass(frozen=True)
class Started:
    """What ``start`` leaves to run: the open cells' ids (shortest lengths first) and the queue they run on."""

    queue: str
    cell_ids: list[int]


def fail_submission(sub_id: int, reason: str) -> None:
    with transaction.atomic():
        sub = Submission.objects.select_for_update().get(pk=sub_id)
        if sub.status in SubmissionStatus.active():
            sub.end(SubmissionStatus.FAILED, reason=reason)


def _claim_submission(sub_id: int) -> Submission | None:
    """queued -> running, once; a re-delivered start finds it running and resumes its open cells."""
    claimed = Submission.objects.filter(pk=sub_id, status=SubmissionStatus.QUEUED).update(
        status=SubmissionStatus.RUNNING, started_at=timezone.now()
    )
    sub = Submission.objects.select_related("model", "version").get(pk=sub_id)
    if claimed:
        SubmissionEvent.objects.create(submission=sub, action=EventAction.STARTED)
        return sub
    return sub if sub.status == SubmissionStatus.RUNNING else None


def expand_grid(sub: Submission, points: list[GridPoint]) -> None:
    """One cell per task, length and grid point; idempotent (a re-delivered start adds nothing). A cell's
    ``samples_total`` counts answers: samples times the task's turns (shared-context mode)."""
    cells = [
        Cell(submission=sub, task=task, length=length, method=point.method, budget=point.budget,
             samples_total=sub.version.samples_per_cell * task.turns)
        for task in sub.version.tasks.all() for length in sub.version.lengths for point in points
    ]
    Cell.objects.bulk_create(cells, ignore_conflicts=True)
    Submission.objects.filter(pk=sub.pk).update(
        cells_total=len(cells), samples_total=sum(cell.samples_total for cell in cells)
    )


def _keep_preflight(sub: Submission, checked: Preflight | None) -> None:
    if checked is not None:
        Submission.objects.filter(pk=sub.pk).update(probe_result=checked.facts, dialect=checked.dialect)


def start(sub_id: int) -> Started:
    """Claim the submission, run its target's pre-flight check and expand its grid (once); returns the cells
    still to run. A submission that cannot run is failed with the check's message."""
    sub = _claim_submission(sub_id)
    if sub is None:
        return Started(queue="", cell_ids=[])
    try:
        target = targets.for_submission(sub)
        if not sub.cells.exists():
            _keep_preflight(sub, target.preflight())
            expand_grid(sub, target.points())
    except SubmissionNotRunnable as exc:
        _keep_preflight(sub, exc.preflight)
        fail_submission(sub.pk, str(exc))
        return Started(queue="", cell_ids=[])
    # Shortest lengths first: every task's first figures appear early, while the long cells still run.
    open_cells = sub.cells.exclude(status__in=CellStatus.ended()).order_by("length", "task__key", "method", "-budget")
    return Started(queue=target.queue, cell_ids=list(open_cells.values_list("pk", flat=True)))


class StoreFailed(Exception):
    """Answers that could not be written even after retries, one at a time and as errors: the database is away."""


def _store(cell: Cell, outcomes: list[SampleOutcome]) -> None:
    """Upsert the outcomes, made storable first (NUL and lone surrogates replaced: evalworkers/storable.py)."""
    outcomes = [storable_outcome(o) for o in outcomes]
    SampleResult.objects.bulk_create(
        [SampleResult(
            cell=cell, index=o.index, prediction=o.prediction, expected=o.expected, score=o.score, error=o.error,
            prompt_tokens=o.prompt_tokens, output_tokens=o.output_tokens, latency_s=o.latency_s, ttft_s=o.ttft_s,
            finish_reason=o.finish_reason, answer_outcome=o.answer_outcome, answer_found_by=o.answer_found_by,
            reasoning_chars=o.reasoning_chars, reasoning_tokens=o.reasoning_tokens,
            decode_tokens_per_s=o.decode_tokens_per_s, metadata=_stored_metadata(o), turn=o.turn,
        ) for o in outcomes],
        update_conflicts=True, unique_fields=["cell", "index", "turn"],
        update_fields=["prediction", "expected", "score", "error", "prompt_tokens", "output_tokens", "latency_s",
                       "ttft_s", "finish_reason", "answer_outcome", "answer_found_by", "reasoning_chars",
                       "reasoning_tokens", "decode_tokens_per_s", "metadata"],
    )


def _stored_metadata(outcome: SampleOutcome) -> dict:
    """The sample's facts, with its target prompt tokens, its KV figures and an out-of-memory note."""
    metadata = {**outcome.metadata, "target_prompt_tokens": outcome.target_prompt_tokens}
    if outcome.efficiency is not None:
        metadata["efficiency"] = outcome.efficiency.as_json()
    if outcome.out_of_memory:
        metadata.update(oom=True, reached_bytes=outcome.reached_bytes)
    return metadata


def _write(cell: Cell, outcomes: list[SampleOutcome]) -> list[SampleOutcome]:
    """Store a batch, retried with backoff; if it still fails, one sample at a time, and a sample that cannot be
    stored even alone is stored as an error that says so (so it is counted, never silently lost).
    Returns what was stored; raises StoreFailed when not even that could be written. The driver raises
    ValueError (UnicodeEncodeError, NUL in a literal) for text it cannot send: treated like a refused write."""
    for attempt in range(STORE_ATTEMPTS):
        try:
            with transaction.atomic():
                _store(cell, outcomes)
            return outcomes
        except (DatabaseError, ValueError) as exc:
            log.warning("cell %s: storing %d results failed (try %d): %s", cell.pk, len(outcomes), attempt + 1, exc)
            if attempt + 1 < STORE_ATTEMPTS:
                time.sleep(STORE_BACKOFF_S * 2 ** attempt)
    stored = []
    for outcome in outcomes:
        try:
            with transaction.atomic():
                _store(cell, [outcome])
            stored.append(outcome)
            continue
        except (DatabaseError, ValueError) as exc:
            reason = f"the answer could not be stored ({type(exc).__name__}); it is not scored"
            failed = dataclasses.replace(outcome, prediction="", score=None, error=reason,
                                         metadata={"unstored": True})
        try:
            with transaction.atomic():
                _store(cell, [failed])
        except (DatabaseError, ValueError) as exc:
            raise StoreFailed(
                f"could not store {len(outcomes) - len(stored)} answer(s) after {STORE_ATTEMPTS} tries "
                f"({type(exc).__name__}); the cell is failed, not re-run by itself: re-running the submission "
                "evaluates it again") from exc
        stored.append(failed)
    return stored


def _claim_cell(cell_id: int, lease: Lease, worker: str) -> Cell | None:
    """Take the cell for this run: a pending cell, or a running one whose lease went stale (its worker was lost
    before the recovery noticed). A cell another live run holds is left alone: a late re-delivery does nothing."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    claimed = Cell.objects.filter(pk=cell_id).filter(
        Q(status=CellStatus.PENDING)
        | Q(status=CellStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
    ).update(status=CellStatus.RUNNING, started_at=now, worker=worker[:200], lease=lease.token, heartbeat_at=now,
             progress_at=now)
    if not claimed:
        return None
    return Cell.objects.select_related("submission__model", "submission__version", "task").get(pk=cell_id)


def run_cell(cell_id: int, worker: str = "") -> None:
    """Run one cell under a lease (``liveness.Lease``, refreshed every WORKER_HEARTBEAT_S); stored samples are
    skipped, so a cell handed on from a lost worker resumes where it stopped. A run that loses its lease stops
    and leaves the cell to its new holder."""
    lease = Lease(cell_id)
    cell = _claim_cell(cell_id, lease, worker)
    if cell is None:
        return
    sub = cell.submission
    if sub.status != SubmissionStatus.RUNNING:
        finish_cell(cell.pk, lease=lease, cancelled=True)
        return
    breaker = CircuitBreaker(threshold=settings.EVAL_BREAKER_THRESHOLD)
    stop = threading.Event()
    done = {(index, turn) for index, turn in cell.samples.values_list("index", "turn")}
    progress = {"done": len(done), "errored": cell.samples.filter(score__isnull=True).count(), "flushed": 0.0}
    pending: list[SampleOutcome] = []

    def flush() -> None:
        """One upsert and one progress update per batch; a crash loses at most one unflushed batch,
        whose samples are simply re-run by the next delivery (acks_late). A write that fails is retried (_write)."""
        if pending:
            stored = _write(cell, pending)
            progress["done"] += len(stored)
            progress["errored"] += sum(o.score is None for o in stored)
            pending.clear()
            now = timezone.now()
            Cell.objects.filter(pk=cell.pk, lease=lease.token).update(
                samples_done=min(progress["done"], cell.samples_total), samples_errored=progress["errored"],
                progress_at=now, heartbeat_at=now)
        progress["flushed"] = time.monotonic()
        if lease.lost.is_set() or not Submission.objects.filter(pk=sub.pk, status=SubmissionStatus.RUNNING).exists():
            stop.set()

    out_of_memory: list[str] = []

    def on_outcome(outcome: SampleOutcome) -> None:
        pending.append(outcome)
        if outcome.out_of_memory:
            # Longer prompts at this length and method would only fail the same way: the cell ends as a result.
            out_of_memory.append(oom_message(cell.length, outcome.index, outcome.reached_bytes))
            stop.set()
        if len(pending) >= FLUSH_EVERY_SAMPLES or time.monotonic() - progress["flushed"] >= FLUSH_EVERY_S:
            flush()

    error = ""
    keeper = lease.keep(on_lost=stop.set)
    try:
        target = targets.for_submission(sub)
        run = target.cell_run(GridPoint(cell.method, cell.budget))
        with run.backend as backend:
            spec, sizing = target.spec(cell.task, cell.length), run.sizing
            spec = dataclasses.replace(spec, samples=cell.samples_total // spec.turns)
            first = first_missing(spec, done)
            if first is not None:
                spec, sizing = prompt_sizing.calibrate(spec, backend, sizing, first)
            Cell.objects.filter(pk=cell.pk).update(sizing=sizing.method)
            evaluate_cell(spec, backend, sizing.counter, done, concurrency=run.concurrency,
                          breaker=breaker, stop=stop, on_outcome=on_outcome, observe=sizing.observe)
    except (SubmissionNotRunnable, StoreFailed) as exc:
        error = str(exc)
    except SpecError as exc:
        error = f"cannot build samples: {exc}"
    except SoftTimeLimitExceeded:
        error = "the cell ran past the worker's time limit; samples done so far are kept"
    except Exception as exc:  # never leave a cell running forever; the traceback goes to the worker log
        log.exception("cell %s failed", cell.pk)
        error = f"internal error: {type(exc).__name__}"
    try:
        flush()  # keep what was answered, also when the cell stopped early
    except Exception as exc:
        log.exception("cell %s: could not store its last results", cell.pk)
        error = error or (str(exc) if isinstance(exc, StoreFailed) else
                          f"could not store the last results ({type(exc).__name__}); the cell is failed, not re-run "
                          "by itself: re-running the submission evaluates it again")
    finally:
        keeper.stop()
    if breaker.is_open:
        error = breaker.message()
    if out_of_memory and not error:
        finish_cell(cell.pk, lease=lease, oom=out_of_memory[0])
        return
    finish_cell(cell.pk, lease=lease, error=error, cancelled=stop.is_set() and not error)


def _stored_samples(cell: Cell) -> list[StoredSample]:
    """Only the columns the summary reads: predictions, prompts' facts and answers stay in the database."""
    stored = cell.samples.values("score", "error", "metadata__target_prompt_tokens", "prompt_tokens", "ttft_s",
                                 "decode_tokens_per_s", "metadata__efficiency", "finish_reason", "answer_outcome",
                                 "reasoning_chars", "output_tokens", "turn")
    return [StoredSample(score=row["score"], error=row["error"],
                         target_prompt_tokens=row["metadata__target_prompt_tokens"] or 0,
                         prompt_tokens=row["prompt_tokens"], ttft_s=row["ttft_s"],
                         decode_tokens_per_s=row["decode_tokens_per_s"], finish_reason=row["finish_reason"],
                         answer_outcome=row["answer_outcome"], reasoning_chars=row["reasoning_chars"],
                         efficiency=Efficiency.from_json(row["metadata__efficiency"]),
                         output_tokens=row["output_tokens"], turn=row["turn"])
            for row in stored]


def record_summary(cell: Cell, summary: CellSummary) -> None:
    """Copy a summary's figures onto the cell (not saved): score and interval, prompt sizes, timings, finish
    reasons, and the KV figures under their own names (``Efficiency``'s fields are ``Cell``'s columns)."""
    cell.samples_errored = summary.errors
    cell.score, cell.ci_low, cell.ci_high = summary.score, summary.ci_low, summary.ci_high
    cell.ci_method = summary.ci_method
    cell.prompt_tokens_mean = summary.prompt_tokens_mean
    cell.target_prompt_tokens_mean = summary.target_prompt_tokens_mean
    cell.prompt_token_mismatch = summary.prompt_token_mismatch
    cell.ttft_s, cell.decode_tokens_per_s = summary.ttft_s, summary.decode_tokens_per_s
    cell.finish_stop, cell.finish_length = summary.finish_stop, summary.finish_length
    cell.finish_other, cell.no_final_answer = summary.finish_other, summary.no_final_answer
    cell.reasoning_chars_mean = summary.reasoning_chars_mean
    cell.output_tokens_mean = summary.output_tokens_mean
    if summary.efficiency is not None:  # measured by a local model; endpoints leave these columns empty
        for name in EFFICIENCY_FIELDS:
            setattr(cell, name, getattr(summary.efficiency, name))
    if summary.by_turn is not None:  # the shared-context mode; one question per context leaves these empty
        for name in TURN_FIELDS:
            setattr(cell, name, getattr(summary.by_turn, name))


def finish_cell(cell_id: int, *, lease: Lease, error: str = "", cancelled: bool = False, oom: str = "") -> None:
    """End the cell from what is stored, if this run still holds it (a run whose lease was taken leaves the cell
    to its new holder), then complete the submission if that was its last open cell."""
    with transaction.atomic():
        cell = Cell.objects.select_for_update().select_related("submission").get(pk=cell_id)
        # A cell cancelled from outside (moderation.cancel) still gets its counters and score for what it did.
        cancelled_before = cell.status == CellStatus.CANCELLED
        if cell.status in CellStatus.ended() and not cancelled_before:
            return
        if not cancelled_before and cell.lease != lease.token:
            log.info("cell %s: its lease passed to another run; leaving it", cell.pk)
            return
        summary = summarize(_stored_samples(cell))
        cell.samples_done = min(summary.n + summary.errors, cell.samples_total)
        record_summary(cell, summary)
        if oom and not cancelled_before:
            cell.status, cell.error = CellStatus.OOM, oom
        elif cancelled_before or (
                not error and (cancelled or cell.submission.status == SubmissionStatus.CANCELLED)):
            cell.status = CellStatus.CANCELLED
        elif error:
            cell.status, cell.error = CellStatus.FAILED, error
        elif summary.n == 0:
            cell.status = CellStatus.FAILED
            cell.error = f"every sample errored ({summary.errors}); last reason: {summary.top_error}"
        else:
            cell.status = CellStatus.COMPLETED
        cell.finished_at = timezone.now()
        cell.lease = ""
        cell.save()
    finish_submission_if_done(cell.submission_id)


def finish_submission_if_done(sub_id: int) -> None:
    with transaction.atomic():
        sub = Submission.objects.select_for_update().get(pk=sub_id)
        totals = sub.cells.aggregate(
            ended=Count("pk", filter=Q(status__in=CellStatus.ended())), total=Count("pk"),
            done=Sum("samples_done"), errored=Sum("samples_errored"),
        )
        sub.cells_done = totals["ended"]
        sub.samples_done = totals["done"] or 0
        sub.samples_errored = totals["errored"] or 0
        sub.save(update_fields=["cells_done", "samples_done", "samples_errored"])
        if sub.status == SubmissionStatus.RUNNING and totals["total"] and totals["ended"] == totals["total"]:
            failed = list(sub.cells.filter(status=CellStatus.FAILED).select_related("task")[:10])
            if failed:
                sub.end(SubmissionStatus.FAILED, reason="\n".join(
                    f"{c.task.key} @ {c.length} tokens: {c.error}" for c in failed))
            else:
                # In the same transaction, under the submission's lock: completed if and only if its rows exist,
                # built once even when its last cells end together (a re-check finds it completed and stops).
                sub.end(SubmissionStatus.COMPLETED)
                rows.recompute(sub.pk)
