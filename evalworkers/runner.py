"""The evaluation loop with the database: start a submission, run one cell, finish the submission.

Every write is an idempotent upsert or a conditional update, so a re-delivered task (worker killed,
acks_late) resumes where the last one stopped and never scores a sample twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from evalworkers import local_runs, prompt_sizing
from evalworkers.backends import CircuitBreaker, EndpointBackend, EndpointConfig, probe
from evalworkers.backends.dialect import Dialect
from evalworkers.backends.tokenize import RemoteTokenizer
from evalworkers.benchmark import HFTokenCounter, SpecError
from evalworkers.evaluation import CellSpec, SampleOutcome, evaluate_samples, summarize
from evalworkers.kv import registry
from evalworkers.local_runs import SubmissionNotRunnable
from evalworkers.storable import storable_outcome
from leaderboard import rows
from leaderboard.models import (
    BenchmarkVersion,
    Cell,
    CellStatus,
    EventAction,
    ModelKind,
    SampleResult,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
)

log = logging.getLogger(__name__)
DEFAULT_CHARS_PER_TOKEN = 4.0
FLUSH_EVERY_S = 0.5  # results are written, and cancellation checked, at least this often...
FLUSH_EVERY_SAMPLES = 128  # ...or every this many samples
STORE_ATTEMPTS = 3  # a batch whose write fails is retried this many times in all...
STORE_BACKOFF_S = 0.5  # ...waiting this long, doubled each time, between tries


def engine_config(*, base_url: str, model: str, api_mode: str, api_key: str | None) -> EndpointConfig:
    """An endpoint under this deployment's EVAL_* settings (timeouts, retries, concurrency)."""
    return EndpointConfig(
        base_url=base_url, model=model, api_mode=api_mode, api_key=api_key, stream=settings.EVAL_STREAM,
        request_timeout_s=settings.EVAL_REQUEST_TIMEOUT_S, deadline_s=settings.EVAL_DEADLINE_S,
        max_retries=settings.EVAL_MAX_RETRIES, backoff_base_s=settings.EVAL_BACKOFF_BASE_S,
        backoff_cap_s=settings.EVAL_BACKOFF_CAP_S, concurrency=settings.EVAL_CONCURRENCY,
        per_host_limit=settings.EVAL_PER_HOST_LIMIT,
        allow_private=settings.ALLOW_PRIVATE_ENDPOINTS, allowed_networks=tuple(settings.ENDPOINT_ALLOWED_NETWORKS),
    )


def endpoint_config(sub: Submission) -> EndpointConfig:
    """The submission's endpoint in the dialect its probe learned, with the submitter's request options."""
    entry = sub.model
    config = engine_config(base_url=entry.endpoint_url, model=entry.api_model_name, api_mode=entry.api_mode,
                           api_key=sub.get_api_key())
    return dataclasses.replace(config, **(Dialect.from_json(sub.dialect).config_fields() if sub.dialect else {}),
                               extra_body=sub.request_options or None)


def reasoning_advice(version: BenchmarkVersion) -> str:
    """The end of the probe's sentence telling a reasoning model's submitter where it can be evaluated."""
    others = list(BenchmarkVersion.objects.published().filter(params__reasoning=True).exclude(pk=version.pk)
                  .values_list("slug", flat=True))
    if others:
        return ", such as " + " or ".join(f"'{slug}'" for slug in others)
    return " (none is published on this deployment yet)"


def probe_options(version: BenchmarkVersion) -> dict:
    """What the probe needs to know of a version: whether it expects reasoning, and its largest answer budget."""
    extra = version.reasoning_extra_tokens
    answer_tokens = max((t.max_new_tokens for t in version.tasks.all()), default=0)
    return {"expects_reasoning": extra is not None, "answer_tokens": answer_tokens + (extra or 0),
            "reasoning_advice": reasoning_advice(version)}


def grid_points(sub: Submission) -> list[tuple[str, float]]:
    """(method, budget) pairs: endpoints are measured as served; local models add the requested KV methods."""
    points = [("full", 1.0)]
    if sub.model.kind == ModelKind.HUGGINGFACE:
        points += registry.requested_points(sub.kv_methods, sub.kv_budgets, sub.version.kv_offered())
    return points


def fail_submission(sub_id: int, reason: str) -> None:
    with transaction.atomic():
        sub = Submission.objects.select_for_update().get(pk=sub_id)
        if sub.status not in SubmissionStatus.active():
            return
        sub.status = SubmissionStatus.FAILED
        sub.failure_reason = reason
        sub.finished_at = timezone.now()
        sub.api_key_encrypted = ""
        sub.save(update_fields=["status", "failure_reason", "finished_at", "api_key_encrypted"])
        SubmissionEvent.objects.create(submission=sub, action=EventAction.FAILED, note=reason[:2000])


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


def _probe(sub: Submission) -> None:
    config = endpoint_config(sub)
    longest = sub.version.max_length
    result = probe(config, required_context=longest, timeout_s=settings.EVAL_PROBE_TIMEOUT_S,
                   retry_window_s=settings.EVAL_PROBE_RETRY_S, **probe_options(sub.version))
    data = dataclasses.asdict(result)
    data["served_models"] = list(result.served_models)[:20]
    Submission.objects.filter(pk=sub.pk).update(probe_result=data, dialect=result.dialect or {})
    sub.dialect = result.dialect or {}
    if not result.ok:
        raise SubmissionNotRunnable(result.message)


def expand_grid(sub: Submission) -> None:
    tasks = list(sub.version.tasks.all())
    cells = [
        Cell(submission=sub, task=task, length=length, method=method, budget=budget,
             samples_total=sub.version.samples_per_cell)
        for task in tasks for length in sub.version.lengths for method, budget in grid_points(sub)
    ]
    Cell.objects.bulk_create(cells, ignore_conflicts=True)
    Submission.objects.filter(pk=sub.pk).update(
        cells_total=len(cells), samples_total=len(cells) * sub.version.samples_per_cell
    )


def start(sub_id: int) -> list[int]:
    """Probe, expand the grid; returns the ids of the cells still to run."""
    sub = _claim_submission(sub_id)
    if sub is None:
        return []
    if not sub.cells.exists():
        try:
            if sub.model.kind == ModelKind.HUGGINGFACE:
                local_runs.check(sub)
            elif sub.model.kind == ModelKind.ENDPOINT:
                _probe(sub)
            else:
                raise SubmissionNotRunnable("Reported results are imported, not evaluated.")
        except SubmissionNotRunnable as exc:
            fail_submission(sub.pk, str(exc))
            return []
        expand_grid(sub)
    # Shortest lengths first: every task's first figures appear early, while the long cells still run.
    open_cells = sub.cells.exclude(status__in=CellStatus.ended()).order_by("length", "task__key", "method", "-budget")
    return list(open_cells.values_list("pk", flat=True))


def cell_spec(cell: Cell) -> CellSpec:
    version = cell.submission.version
    return CellSpec(
        seed=version.seed, task_key=cell.task.key, task_type=cell.task.task_type, params=cell.task.params,
        length=cell.length, max_new_tokens=cell.task.max_new_tokens, samples=version.samples_per_cell,
        api_mode=cell.submission.model.api_mode, options=version.render_options,
    )


def endpoint_sizing(backend: EndpointBackend, dialect: Dialect, chars_per_token: float | None,
                    tokenizer_hint: str = "") -> prompt_sizing.Sizing:
    """How an endpoint's cells are sized: its tokenize route, a hinted tokenizer, or calibration per cell."""
    remote = RemoteTokenizer(backend, dialect.tokenize).count if dialect.tokenize else None
    return prompt_sizing.for_endpoint(dialect, chars_per_token=chars_per_token or DEFAULT_CHARS_PER_TOKEN,
                                      remote_count=remote, tokenizer_hint=tokenizer_hint)


def _backend_and_sizing(cell: Cell) -> tuple[contextlib.AbstractContextManager, prompt_sizing.Sizing, int]:
    """The model behind a cell, how its samples are sized, and how many samples run at once."""
    sub = cell.submission
    if sub.model.kind == ModelKind.HUGGINGFACE:
        backend = local_runs.backend(sub, cell.method, cell.budget)
        sizing = prompt_sizing.Sizing(prompt_sizing.SizingMethod.MODEL_TOKENIZER,
                                      HFTokenCounter(backend.loaded.tokenizer), measure=backend.count_prompt)
        return backend, sizing, 1
    backend = EndpointBackend(endpoint_config(sub))
    sizing = endpoint_sizing(backend, Dialect.from_json(sub.dialect), (sub.probe_result or {}).get("chars_per_token"),
                             sub.model.tokenizer_hint)
    return backend, sizing, settings.EVAL_CONCURRENCY


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
            metadata={**o.metadata, "target_prompt_tokens": o.target_prompt_tokens},
        ) for o in outcomes],
        update_conflicts=True, unique_fields=["cell", "index"],
        update_fields=["prediction", "expected", "score", "error", "prompt_tokens", "output_tokens", "latency_s",
                       "ttft_s", "finish_reason", "answer_outcome", "answer_found_by", "reasoning_chars",
                       "reasoning_tokens", "metadata"],
    )


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


def _claim_cell(cell_id: int) -> Cell | None:
    claimed = Cell.objects.filter(pk=cell_id, status__in=[CellStatus.PENDING, CellStatus.RUNNING]).update(
        status=CellStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    return Cell.objects.select_related("submission__model", "submission__version", "task").get(pk=cell_id)


def run_cell(cell_id: int) -> None:
    cell = _claim_cell(cell_id)
    if cell is None:
        return
    sub = cell.submission
    if sub.status != SubmissionStatus.RUNNING:
        finish_cell(cell.pk, cancelled=True)
        return
    breaker = CircuitBreaker(threshold=settings.EVAL_BREAKER_THRESHOLD)
    stop = threading.Event()
    done = set(cell.samples.values_list("index", flat=True))
    todo = [i for i in range(cell.samples_total) if i not in done]
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
            Cell.objects.filter(pk=cell.pk).update(samples_done=min(progress["done"], cell.samples_total),
                                                   samples_errored=progress["errored"])
        progress["flushed"] = time.monotonic()
        if not Submission.objects.filter(pk=sub.pk, status=SubmissionStatus.RUNNING).exists():
            stop.set()

    out_of_memory: list[str] = []

    def on_outcome(outcome: SampleOutcome) -> None:
        pending.append(outcome)
        if outcome.metadata.get("oom"):
            # Longer prompts at this length and method would only fail the same way: the cell ends as a result.
            out_of_memory.append(local_runs.oom_message(cell.length, outcome))
            stop.set()
        if len(pending) >= FLUSH_EVERY_SAMPLES or time.monotonic() - progress["flushed"] >= FLUSH_EVERY_S:
            flush()

    error = ""
    try:
        backend, sizing, concurrency = _backend_and_sizing(cell)
        with backend:
            spec, sizing = prompt_sizing.calibrate(cell_spec(cell), backend, sizing, todo[0]) if todo else (
                cell_spec(cell), sizing)
            Cell.objects.filter(pk=cell.pk).update(sizing=sizing.method)
            evaluate_samples(spec, backend, sizing.counter, todo, concurrency=concurrency,
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
    if breaker.is_open:
        error = breaker.message()
    if out_of_memory and not error:
        finish_cell(cell.pk, oom=out_of_memory[0])
        return
    finish_cell(cell.pk, error=error, cancelled=stop.is_set() and not error)


def finish_cell(cell_id: int, *, error: str = "", cancelled: bool = False, oom: str = "") -> None:
    with transaction.atomic():
        cell = Cell.objects.select_for_update().select_related("submission").get(pk=cell_id)
        # A cell cancelled from outside (moderation.cancel) still gets its counters and score for what it did.
        cancelled_before = cell.status == CellStatus.CANCELLED
        if cell.status in CellStatus.ended() and not cancelled_before:
            return
        # Only the columns the summary reads: predictions, prompts' metadata and answers stay in the database.
        stored = cell.samples.values("index", "score", "error", "metadata__target_prompt_tokens",
                                     "prompt_tokens", "output_tokens", "latency_s", "ttft_s", "metadata__efficiency",
                                     "finish_reason", "answer_outcome", "reasoning_chars")
        outcomes = [
            SampleOutcome(index=row["index"], prediction="", expected=[], score=row["score"], error=row["error"],
                          target_prompt_tokens=row["metadata__target_prompt_tokens"] or 0,
                          prompt_tokens=row["prompt_tokens"], output_tokens=row["output_tokens"],
                          latency_s=row["latency_s"] or 0.0, ttft_s=row["ttft_s"],
                          metadata={"efficiency": row["metadata__efficiency"]} if row["metadata__efficiency"] else {},
                          finish_reason=row["finish_reason"], answer_outcome=row["answer_outcome"],
                          reasoning_chars=row["reasoning_chars"])
            for row in stored
        ]
        summary = summarize(outcomes)
        cell.samples_done = min(len(outcomes), cell.samples_total)
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
        for name, value in local_runs.cell_efficiency(outcomes).items():
            setattr(cell, name, value)
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
        fields = ["cells_done", "samples_done", "samples_errored"]
        if sub.status == SubmissionStatus.RUNNING and totals["total"] and totals["ended"] == totals["total"]:
            failed = list(sub.cells.filter(status=CellStatus.FAILED).select_related("task")[:10])
            if failed:
                sub.status = SubmissionStatus.FAILED
                sub.failure_reason = "\n".join(f"{c.task.key} @ {c.length} tokens: {c.error}" for c in failed)
            else:
                sub.status = SubmissionStatus.COMPLETED
            sub.finished_at = timezone.now()
            sub.api_key_encrypted = ""
            fields += ["status", "failure_reason", "finished_at", "api_key_encrypted"]
            SubmissionEvent.objects.create(
                submission=sub, action=EventAction.FAILED if failed else EventAction.COMPLETED,
                note=sub.failure_reason[:2000] if failed else "",
            )
        sub.save(update_fields=fields)
        if sub.status == SubmissionStatus.COMPLETED:
            submission_id = sub.pk
            transaction.on_commit(lambda: rows.recompute(submission_id))
