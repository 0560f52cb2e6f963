"""Recomputing a submission's cached leaderboard rows from its cells (pandas, in leaderboard/metrics.py)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Avg, F, QuerySet
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from leaderboard import board_snapshots, metrics, reported_rows, samples
from leaderboard.models import (
    BenchmarkVersion,
    Cell,
    CellSizing,
    CellStatus,
    LeaderboardRow,
    Submission,
    SubmissionStatus,
)


def touch(version_id: int) -> None:
    """Mark the version's board as changed (cached pages are keyed by its revision) and have its snapshots
    rebuilt once this transaction commits (leaderboard/board_snapshots.py)."""
    BenchmarkVersion.objects.filter(pk=version_id).update(board_changed_at=timezone.now(),
                                                          board_revision=F("board_revision") + 1)
    board_snapshots.schedule(version_id)


def _key(length: int) -> str:
    return str(length)


def partial_reason(summary: metrics.RowSummary, sub: Submission) -> str:
    """Why a row is partial: cells missing from the grid, tasks of an imported file skipped; "" when neither."""
    reasons = [summary.partial_reason] if summary.partial_reason else []
    if sub.import_skipped:
        reasons.append("tasks of the imported file skipped: " + ", ".join(map(str, sub.import_skipped)))
    return "; ".join(reasons)[:300]


@transaction.atomic
def recompute(submission_id: int) -> list[LeaderboardRow]:
    """Replace the submission's rows; a submission that is not completed has none. Two recomputes of one
    submission at once take turns on its row lock, so the second replaces the first's rows instead of colliding
    with them on the rows' unique constraint."""
    sub = Submission.objects.select_for_update(of=("self",)).select_related("model", "version").get(
        pk=submission_id)
    LeaderboardRow.objects.filter(submission=sub).delete()
    touch(sub.version_id)
    if sub.status != SubmissionStatus.COMPLETED:
        return []
    version = sub.version
    if version.is_reported:  # a published table's row: no cells, its figures are the reported result's
        return reported_rows.build(sub)
    sub.figures = samples.page_figures(sub)  # what the model page draws from the samples, read once here
    sub.save(update_fields=["figures"])
    ended = Cell.objects.filter(submission=sub, status__in=[CellStatus.COMPLETED, CellStatus.OOM])
    # A cell whose prompts missed their length is not a score at that length: it stays off its column.
    records = list(
        ended.filter(prompt_token_mismatch=False)
        .values("task__key", "task__category", "task__weight", "length", "method", "budget", "score", "ci_low",
                "ci_high", "samples_done", "samples_errored", "kv_bytes")
    )
    notes = missed_lengths(ended)
    unverified = set(ended.filter(sizing=CellSizing.UNVERIFIED).values_list("method", "budget").distinct())
    frame = metrics.cell_frame(records)
    summaries = metrics.summarize_cells(frame, lengths=list(version.lengths),
                                        tasks=list(version.tasks.values_list("key", flat=True)),
                                        threshold=version.effective_length_threshold)
    outputs = {t.key: t.output_tokens for t in version.tasks.all() if t.output_tokens is not None}
    by_output = metrics.scores_by_output(frame, outputs)
    kv = {(r["method"], r["budget"]): r["kv"] for r in
          Cell.objects.filter(submission=sub).values("method", "budget").annotate(kv=Avg("kv_bytes"))}
    entry = sub.model
    rows = [
        LeaderboardRow(
            submission=sub, version=version, method=s.method, budget=s.budget, model_name=entry.display_name,
            organisation=entry.organisation, model_kind=entry.kind,
            parameters_b=float(entry.parameters_b) if entry.parameters_b is not None else None,
            claimed_context=entry.claimed_context, is_baseline=sub.is_baseline, visibility=sub.visibility,
            public_note=sub.public_note,
            # A length some of whose cells missed it has no score of its own (not a mean of the other tasks).
            scores_by_length={_key(k): None if _key(k) in notes.get((s.method, s.budget), {}) else v
                              for k, v in s.scores_by_length.items()},
            ci_by_length={_key(k): list(v) if v and _key(k) not in notes.get((s.method, s.budget), {}) else None
                          for k, v in s.ci_by_length.items()},
            task_scores={t: {_key(k): v for k, v in by_len.items()} for t, by_len in s.task_scores.items()},
            category_scores={c: {_key(k): v for k, v in by_len.items()} for c, by_len in s.category_scores.items()},
            scores_by_output=by_output.get((s.method, s.budget), {}),
            average=s.average, wavg_inc=s.wavg_inc, wavg_dec=s.wavg_dec, ci_low=s.ci_low, ci_high=s.ci_high,
            ci_method=s.ci_method, effective_length=s.effective_length, complete=s.complete,
            partial_reason=partial_reason(s, sub), kv_bytes_mean=kv.get((s.method, s.budget)),
            samples=s.samples, samples_errored=s.samples_errored, completed_at=sub.finished_at,
            length_notes=notes.get((s.method, s.budget), {}),
            lengths_verified=(s.method, s.budget) not in unverified,
        )
        for s in summaries
    ]
    return LeaderboardRow.objects.bulk_create(rows)


def missed_lengths(cells: QuerySet[Cell]) -> dict[tuple[str, float], dict[str, str]]:
    """Per (method, budget), per length: why the length's column is empty (the cells whose prompts missed it)."""
    notes: dict[tuple[str, float], dict[str, list[str]]] = {}
    for c in cells.filter(prompt_token_mismatch=True).values("method", "budget", "length", "task__key",
                                                             "prompt_tokens_mean", "target_prompt_tokens_mean"):
        reason = (f"{c['task__key']}: the model's server counted {c['prompt_tokens_mean'] or 0:,.0f} prompt tokens "
                  f"for a target of {c['target_prompt_tokens_mean'] or 0:,.0f}")
        notes.setdefault((c["method"], c["budget"]), {}).setdefault(_key(c["length"]), []).append(reason)
    return {point: {length: "; ".join(reasons) for length, reasons in by_length.items()}
            for point, by_length in notes.items()}


def refresh_visibility(submission_id: int) -> None:
    """Hiding or flagging changes only what the rows show, not their numbers."""
    sub = Submission.objects.get(pk=submission_id)
    LeaderboardRow.objects.filter(submission=sub).update(
        visibility=sub.visibility, public_note=sub.public_note, is_baseline=sub.is_baseline
    )
    touch(sub.version_id)


@receiver(post_delete, sender=Submission)
def _submission_deleted(sender: type, instance: Submission, **_: object) -> None:
    # Its rows go with it (an admin deleting a submission or a model entry): cached pages must notice.
    touch(instance.version_id)
