"""Model entries (what is evaluated) and submissions (one evaluation of an entry on a version)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from leaderboard import crypto
from leaderboard.models.versions import BenchmarkVersion


class ModelKind(models.TextChoices):
    """What is evaluated. The worker side of each kind is an ``evalworkers.targets.Target``; what the web needs
    to know of a kind (its queue, whether it runs KV methods) is here, once."""

    ENDPOINT = "endpoint", "Endpoint"
    HUGGINGFACE = "huggingface", "Local (Hugging Face)"
    REPORTED = "reported", "Reported"

    @property
    def queue(self) -> str:
        """The Celery queue its submissions run on: `api` (network-bound) or `gpu`; "" when never evaluated."""
        return {"endpoint": "api", "huggingface": "gpu"}.get(self.value, "")

    @property
    def runs_kv_methods(self) -> bool:
        """Whether its grid adds KV methods and budgets to the full cache (only a model we run ourselves)."""
        return self.value == "huggingface"


class ApiMode(models.TextChoices):
    CHAT = "chat", "Chat completions"
    COMPLETIONS = "completions", "Completions"


class ModelEntry(models.Model):
    display_name = models.CharField(max_length=120)
    organisation = models.CharField(max_length=120, blank=True)
    kind = models.CharField(max_length=12, choices=ModelKind.choices, default=ModelKind.ENDPOINT)
    endpoint_url = models.URLField(max_length=500, blank=True, help_text="OpenAI-compatible base URL.")
    api_model_name = models.CharField(max_length=200, blank=True, help_text="Model name the endpoint serves.")
    api_mode = models.CharField(max_length=12, choices=ApiMode.choices, default=ApiMode.CHAT)
    tokenizer_hint = models.CharField(max_length=200, blank=True)
    hf_repo = models.CharField(max_length=200, blank=True, help_text="Hugging Face repo id, local dir or GGUF file.")
    hf_revision = models.CharField(max_length=100, blank=True)
    model_key = models.CharField(
        max_length=200, blank=True, editable=False,
        help_text="The model's identity across versions: its Hugging Face repo id in lower case, or the alias "
                  "table's key (data/reported/aliases.csv); set on save.")
    parameters_b = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    claimed_context = models.PositiveIntegerField(null=True, blank=True)
    model_card_url = models.URLField(max_length=500, blank=True)
    paper_url = models.URLField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "model entries"
        ordering = ("display_name",)
        constraints = [
            models.CheckConstraint(
                condition=Q(claimed_context__isnull=True) | Q(claimed_context__gt=0),
                name="model_claimed_context_positive",
            ),
            models.CheckConstraint(
                condition=~Q(kind=ModelKind.ENDPOINT) | (~Q(endpoint_url="") & ~Q(api_model_name="")),
                name="model_endpoint_has_url_and_name",
            ),
            models.CheckConstraint(
                condition=~Q(kind=ModelKind.HUGGINGFACE) | ~Q(hf_repo=""), name="model_local_has_repo"
            ),
        ]
        indexes = [models.Index(fields=["kind", "display_name"], name="model_kind_name"),
                   models.Index(fields=["model_key"], name="model_by_key")]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.model_key:
            from leaderboard.model_identity import model_key

            self.model_key = model_key(self.hf_repo, self.display_name)
        super().save(*args, **kwargs)


class SubmissionStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "Pending review"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"

    @classmethod
    def active(cls) -> tuple[str, ...]:
        return (cls.PENDING_REVIEW, cls.QUEUED, cls.RUNNING)

    @classmethod
    def ended(cls) -> tuple[str, ...]:
        return (cls.COMPLETED, cls.FAILED, cls.CANCELLED, cls.REJECTED)


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    HIDDEN = "hidden", "Hidden"
    FLAGGED = "flagged", "Flagged"


class Submission(models.Model):
    model = models.ForeignKey(ModelEntry, on_delete=models.CASCADE, related_name="submissions")
    version = models.ForeignKey(BenchmarkVersion, on_delete=models.PROTECT, related_name="submissions")
    submitter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions"
    )
    submitter_address = models.CharField(
        max_length=254, blank=True, help_text="The submitter's verified address as the quota counts it.")
    kv_methods = models.JSONField(
        default=list, blank=True,
        help_text='Requested compressing KV methods (local models); never "full": the full cache always runs.')
    kv_budgets = models.JSONField(default=list, blank=True, help_text="Requested KV budgets (local models).")
    status = models.CharField(max_length=16, choices=SubmissionStatus.choices, default=SubmissionStatus.QUEUED)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    public_note = models.TextField(blank=True, help_text="Shown publicly next to a flagged submission.")
    is_baseline = models.BooleanField(default=False)
    failure_reason = models.TextField(blank=True)
    probe_result = models.JSONField(default=dict, blank=True)
    dialect = models.JSONField(
        default=dict, blank=True,
        help_text="What the probe learned of the endpoint's API dialect (evalworkers.backends.dialect.Dialect).")
    request_options = models.JSONField(
        default=dict, blank=True,
        help_text="Extra request fields the submitter chose from the allowlist (evalworkers.backends.options).")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    import_sha256 = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the imported file (reported results): a re-import is refused.")
    import_skipped = models.JSONField(
        default=list, blank=True, help_text="Task names of the imported file that were skipped (--skip-unknown).")
    run_number = models.PositiveIntegerField(default=1, editable=False, help_text="Incremented by each re-run.")
    figures = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text='What the model page draws from its samples, stored when the result is recomputed: {"depth": '
                  '[{length, depth_percent, score}] (mean score per needle-depth bin and length), "answers": {...}}.')
    cells_total = models.PositiveIntegerField(default=0)
    cells_done = models.PositiveIntegerField(default=0)
    samples_total = models.PositiveIntegerField(default=0)
    samples_done = models.PositiveIntegerField(default=0)
    samples_errored = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.CheckConstraint(
                condition=Q(cells_done__lte=models.F("cells_total")), name="submission_cells_done_le_total"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["completed", "failed", "cancelled", "rejected"]) | Q(api_key_encrypted=""),
                name="submission_key_erased_when_ended",
            ),
        ]
        indexes = [
            models.Index(fields=["version", "status", "visibility"], name="submission_board_lookup"),
            models.Index(fields=["status", "created_at"], name="submission_queue_order"),
            models.Index(fields=["submitter", "-created_at"], name="submission_by_submitter"),
            models.Index(fields=["submitter_address", "-created_at"], name="submission_by_address"),
            models.Index(fields=["import_sha256"], name="submission_by_import_hash"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.model} on {self.version.slug}"

    # The key is only ever handled through these three; it has no plaintext attribute to leak.
    def set_api_key(self, raw: str | None) -> None:
        self.api_key_encrypted = crypto.encrypt(raw) if raw else ""

    def get_api_key(self) -> str | None:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else None

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def dialect_notes(self) -> list[str]:
        """How requests were sent to the endpoint, as learned by the probe (for the provenance)."""
        from evalworkers.backends.dialect import Dialect

        return Dialect.from_json(self.dialect).notes() if self.dialect else []

    @property
    def is_active(self) -> bool:
        return self.status in SubmissionStatus.active()

    def clean(self) -> None:
        if "full" in (self.kv_methods or []):
            raise ValidationError({"kv_methods": 'List compressing methods only: the full cache ("full") always '
                                                 "runs as every local submission's baseline."})

    def end(self, status: str, *, reason: str = "", actor: Any = None, note: str | None = None) -> None:
        """The one way a submission ends (completed, failed, cancelled, rejected): status, finish time, failure
        reason, the API key erased, and the matching event in its history (``note``: the event's text, by default
        the reason). Call it on a row locked with select_for_update, inside the transaction."""
        if status not in SubmissionStatus.ended():
            raise ValueError(f"{status!r} does not end a submission")
        self.status = status
        self.finished_at = timezone.now()
        self.api_key_encrypted = ""  # the key is erased whenever a submission ends
        if reason:
            self.failure_reason = reason
        self.save(update_fields=["status", "finished_at", "api_key_encrypted", "failure_reason"])
        SubmissionEvent.objects.create(submission=self, actor=actor, action=ENDING_EVENTS[status],
                                       note=(reason if note is None else note)[:2000])


class EventAction(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    RERUN = "rerun", "Re-run"
    HIDDEN = "hidden", "Hidden"
    SHOWN = "shown", "Made public"
    FLAGGED = "flagged", "Flagged"
    BASELINE = "baseline", "Marked baseline"
    UNBASELINE = "unbaseline", "Baseline mark removed"
    WITHDRAWN = "withdrawn", "Withdrawn"
    STARTED = "started", "Started"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    RECOVERED = "recovered", "Cell recovered from a lost worker"


class SubmissionEvent(models.Model):
    """Who did what to a submission, and when; shown on its status page."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=12, choices=EventAction.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "pk")
        indexes = [models.Index(fields=["submission", "created_at"], name="event_by_submission")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor or 'system'}"


#: The event each ending status is logged as (``Submission.end``).
ENDING_EVENTS = {SubmissionStatus.COMPLETED: EventAction.COMPLETED, SubmissionStatus.FAILED: EventAction.FAILED,
                 SubmissionStatus.CANCELLED: EventAction.CANCELLED, SubmissionStatus.REJECTED: EventAction.REJECTED}
