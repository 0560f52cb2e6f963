"""Cells (one grid point of a submission) and per-sample results. Writes are idempotent upserts."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from django.db import models
from django.db.models import Q

from evalworkers.benchmark.answers import OUTCOME_LABELS, AnswerOutcome
from evalworkers.prompt_sizing import SIZING_LABELS, SizingMethod
from evalworkers.stats import METHOD_LABELS, IntervalMethod
from leaderboard.models.submissions import Submission
from leaderboard.models.versions import TaskSpec


class CellStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    OOM = "oom", "Out of memory"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def ended(cls) -> tuple[str, ...]:
        return (cls.COMPLETED, cls.FAILED, cls.OOM, cls.CANCELLED)


def mirrored_choices(name: str, values: type[StrEnum], labels: Mapping[StrEnum, str]) -> type[models.TextChoices]:
    """Choices with the same names, values and labels as a worker package's enum: the values are decided
    there (no Django), the database stores them here, and nothing is written twice."""
    return models.TextChoices(name, [(member.name, (member.value, labels[member])) for member in values])


#: Whether a reply had a final answer (``answers.AnswerOutcome``).
SampleAnswer = mirrored_choices("SampleAnswer", AnswerOutcome, OUTCOME_LABELS)
#: How a cell's prompts were sized (``prompt_sizing.SizingMethod``).
CellSizing = mirrored_choices("CellSizing", SizingMethod, SIZING_LABELS)
#: How a 95% interval was computed (``evalworkers.stats.IntervalMethod``).
CiMethod = mirrored_choices("CiMethod", IntervalMethod, METHOD_LABELS)


class Cell(models.Model):
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="cells")
    task = models.ForeignKey(TaskSpec, on_delete=models.PROTECT, related_name="cells")
    length = models.PositiveIntegerField()
    method = models.CharField(max_length=40, default="full")
    budget = models.FloatField(default=1.0)
    status = models.CharField(max_length=10, choices=CellStatus.choices, default=CellStatus.PENDING)
    samples_total = models.PositiveIntegerField(default=0)
    samples_done = models.PositiveIntegerField(default=0)
    samples_errored = models.PositiveIntegerField(default=0)
    score = models.FloatField(null=True, blank=True, help_text="Mean score 0-100 over scored samples.")
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    ci_method = models.CharField(max_length=24, choices=CiMethod.choices, blank=True, default=CiMethod.NONE,
                                 help_text="How ci_low/ci_high were computed (evalworkers/stats.py).")
    prompt_tokens_mean = models.FloatField(null=True, blank=True, help_text="As the model's server counted them.")
    target_prompt_tokens_mean = models.FloatField(
        null=True, blank=True, help_text="The prompts' target: the length minus the new tokens.")
    prompt_token_mismatch = models.BooleanField(
        default=False, help_text="The server's count was over the target or more than 2% below it.")
    sizing = models.CharField(max_length=20, choices=CellSizing.choices, blank=True,
                              help_text="How the prompts were sized in the model's tokens.")
    kv_bytes = models.BigIntegerField(null=True, blank=True, help_text="KV cache bytes after prefill, measured.")
    kv_bytes_full = models.BigIntegerField(null=True, blank=True, help_text="The same prompt's full-cache bytes.")
    kept_fraction = models.FloatField(null=True, blank=True)
    physical = models.BooleanField(
        null=True, blank=True, help_text="False when the method only masks keys and frees no memory (logical only)."
    )
    query_aware = models.BooleanField(
        null=True, blank=True, help_text="True when context and question were compressed together."
    )
    kv_bytes_end = models.BigIntegerField(
        null=True, blank=True, help_text="KV cache bytes when decoding ended (prompt plus reply), measured.")
    peak_memory_bytes = models.BigIntegerField(null=True, blank=True)
    prefill_s = models.FloatField(null=True, blank=True)
    kv_bytes_after_turns = models.BigIntegerField(
        null=True, blank=True, help_text="Shared-context mode: KV cache bytes after the last turn's answer, measured.")
    first_turn_score = models.FloatField(
        null=True, blank=True, help_text="Shared-context mode: mean score 0-100 on each context's first question.")
    later_turns_score = models.FloatField(
        null=True, blank=True, help_text="Shared-context mode: mean score 0-100 on the later questions.")
    first_turn_ttft_s = models.FloatField(
        null=True, blank=True, help_text="Shared-context mode: mean time to first token of turn 1, measured.")
    second_turn_ttft_s = models.FloatField(
        null=True, blank=True, help_text="Shared-context mode: mean time to first token of turn 2, measured.")
    ttft_s = models.FloatField(null=True, blank=True)
    decode_tokens_per_s = models.FloatField(null=True, blank=True)
    output_tokens_mean = models.FloatField(
        null=True, blank=True, help_text="Mean reply tokens over scored samples, as the backend counted them.")
    finish_stop = models.PositiveIntegerField(default=0, help_text="Scored samples that ended on their own.")
    finish_length = models.PositiveIntegerField(default=0, help_text="Scored samples cut off by the token limit.")
    finish_other = models.PositiveIntegerField(default=0, help_text="Scored samples with another or no reason.")
    no_final_answer = models.PositiveIntegerField(
        default=0, help_text="Scored samples whose reply had no final answer (scored 0).")
    reasoning_chars_mean = models.FloatField(
        null=True, blank=True, help_text="Mean reasoning length in characters over scored samples; null: none.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The lease of the worker running the cell (evalworkers/recovery.py): who holds it, its token, when the
    # worker last proved it alive, and when a sample was last stored.
    worker = models.CharField(max_length=200, blank=True, help_text="The worker running the cell (its node name).")
    lease = models.CharField(max_length=32, blank=True, help_text="Token of the run that holds the cell.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="When its worker last proved it alive.")
    progress_at = models.DateTimeField(null=True, blank=True, help_text="When it last stored a sample.")
    recoveries = models.PositiveSmallIntegerField(default=0, help_text="Times it was taken from a lost worker.")

    class Meta:
        ordering = ("submission", "task__key", "length", "method", "-budget")
        constraints = [
            models.UniqueConstraint(
                fields=["submission", "task", "length", "method", "budget"], name="cell_unique_grid_point"
            ),
            models.CheckConstraint(condition=Q(length__gt=0), name="cell_length_positive"),
            models.CheckConstraint(condition=Q(budget__gt=0) & Q(budget__lte=1), name="cell_budget_in_0_1"),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | (Q(score__gte=0) & Q(score__lte=100)), name="cell_score_0_100"
            ),
            models.CheckConstraint(
                condition=Q(samples_done__lte=models.F("samples_total")), name="cell_samples_done_le_total"
            ),
        ]
        indexes = [
            models.Index(fields=["submission", "status"], name="cell_submission_status"),
            models.Index(fields=["task", "length", "method", "budget"], name="cell_board_lookup"),
            models.Index(fields=["status", "heartbeat_at"], name="cell_status_heartbeat"),
            models.Index(fields=["worker", "status"], name="cell_worker_status"),
        ]

    def __str__(self) -> str:
        return f"{self.task.key}@{self.length} {self.method}:{self.budget:g}"

    @property
    def finish_reasons(self) -> dict[str, int]:
        """Scored samples by why their reply ended: stop (on its own), length (the token limit), other."""
        return {"stop": self.finish_stop, "length": self.finish_length, "other": self.finish_other}

    @property
    def answer_note(self) -> str:
        """A sentence when replies were cut off or had no final answer, else ""."""
        scored = self.finish_stop + self.finish_length + self.finish_other
        parts = []
        if scored and self.finish_length * 2 > scored:
            parts.append(f"most samples ({self.finish_length} of {scored}) stopped at the token limit")
        if self.no_final_answer:
            parts.append(f"{self.no_final_answer} of {scored} had no final answer (scored 0)")
        return "; ".join(parts)


class SampleResult(models.Model):
    cell = models.ForeignKey(Cell, on_delete=models.CASCADE, related_name="samples")
    index = models.PositiveIntegerField()
    turn = models.PositiveSmallIntegerField(
        default=1, help_text="Which question about the sample's context (shared-context mode); 1 otherwise.")
    prediction = models.TextField(blank=True)
    expected = models.JSONField(default=list)
    score = models.FloatField(null=True, blank=True, help_text="Null when the sample errored (not a wrong answer).")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_s = models.FloatField(null=True, blank=True)
    ttft_s = models.FloatField(null=True, blank=True)
    decode_tokens_per_s = models.FloatField(
        null=True, blank=True, help_text="Tokens after the first per second of decoding, as the backend measured.")
    error = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=32, blank=True, help_text="As the server (or local decoder) said.")
    answer_outcome = models.CharField(max_length=32, choices=SampleAnswer.choices, default=SampleAnswer.ANSWERED)
    answer_found_by = models.CharField(
        max_length=64, blank=True, default="plain",
        help_text="How the final answer was separated from reasoning: plain, a format name or a response field.")
    reasoning_chars = models.PositiveIntegerField(default=0, help_text="Reasoning length in characters.")
    reasoning_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Reasoning tokens as the server's usage reported them.")
    metadata = models.JSONField(default=dict, blank=True, help_text="Needle depth and other sample facts.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("cell", "index", "turn")
        constraints = [
            models.UniqueConstraint(fields=["cell", "index", "turn"], name="sample_unique_turn_per_cell"),
            models.CheckConstraint(condition=Q(turn__gte=1), name="sample_turn_from_1"),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | (Q(score__gte=0) & Q(score__lte=100)), name="sample_score_0_100"
            ),
            models.CheckConstraint(
                condition=(Q(score__isnull=True) & ~Q(error="")) | (Q(score__isnull=False) & Q(error="")),
                name="sample_scored_xor_errored",
            ),
        ]
        indexes = [models.Index(fields=["cell", "score"], name="sample_cell_score")]

    def __str__(self) -> str:
        return f"{self.cell} #{self.index}" + (f" turn {self.turn}" if self.turn > 1 else "")
