"""The cached leaderboard: one row per completed submission and (method, budget), so pages never aggregate
per-sample rows on a request. Rows are recomputed by leaderboard/rows.py when a submission completes or when
its visibility changes; BoardSnapshot keeps a version's rows ranked and ready to render
(leaderboard/board_snapshots.py), so that a request after a change does not rank thousands of rows."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from leaderboard.models.results import CiMethod
from leaderboard.models.submissions import ModelKind, Submission, Visibility
from leaderboard.models.versions import BenchmarkVersion


class LeaderboardRow(models.Model):
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="board_rows")
    version = models.ForeignKey(BenchmarkVersion, on_delete=models.CASCADE, related_name="board_rows")
    method = models.CharField(max_length=40, default="full")
    budget = models.FloatField(default=1.0)
    # Copied from the model entry / submission so that filtering and sorting need no join.
    model_name = models.CharField(max_length=120)
    organisation = models.CharField(max_length=120, blank=True)
    model_kind = models.CharField(max_length=12, choices=ModelKind.choices)
    parameters_b = models.FloatField(null=True, blank=True)
    claimed_context = models.PositiveIntegerField(null=True, blank=True)
    is_baseline = models.BooleanField(default=False)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    public_note = models.TextField(blank=True)
    # Aggregates (0-100), computed by leaderboard/metrics.py.
    scores_by_length = models.JSONField(default=dict, help_text='{"4096": 93.1, ...}; null where not measured.')
    ci_by_length = models.JSONField(default=dict, help_text='{"4096": [91.2, 95.0], ...}; 95% CI per length.')
    task_scores = models.JSONField(default=dict, help_text='{"niah_single_1": {"4096": 100.0, ...}, ...}')
    category_scores = models.JSONField(default=dict, help_text='{"retrieval": {"4096": 97.0, ...}, ...}')
    scores_by_output = models.JSONField(
        default=dict, blank=True,
        help_text='{"512": 71.0, ...}: long-generation tasks by their target reply length in tokens, the mean over '
                  'those tasks and every context length; empty when the version has none.')
    average = models.FloatField(null=True, blank=True)
    wavg_inc = models.FloatField(null=True, blank=True)
    wavg_dec = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    ci_method = models.CharField(max_length=24, choices=CiMethod.choices, blank=True, default=CiMethod.NONE,
                                 help_text="How ci_low/ci_high and ci_by_length were computed.")
    effective_length = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="Longest length up to which every score passes.")
    complete = models.BooleanField(default=True, help_text="Every task and length of the version was measured.")
    length_notes = models.JSONField(
        default=dict, blank=True,
        help_text='{"4096": "why this length has no score"}: cells whose prompts missed the length.')
    lengths_verified = models.BooleanField(
        default=True, help_text="False when the model's server reported no token counts to check lengths with.")
    partial_reason = models.CharField(
        max_length=300, blank=True,
        help_text="Why the row is partial (cells missing, tasks of the imported file skipped); blank: it is not.")
    reported = models.JSONField(
        default=dict, blank=True,
        help_text="A reported version's row: source_url, link, notes, the published figures as printed, the "
                  "threshold used, and the checks of our computed figures against the published ones.")
    disagrees = models.BooleanField(
        default=False, help_text="A published figure disagrees with the one computed here from the same table.")
    kv_bytes_mean = models.FloatField(null=True, blank=True)
    samples = models.PositiveIntegerField(default=0)
    samples_errored = models.PositiveIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("version", "-average")
        constraints = [
            models.UniqueConstraint(fields=["submission", "method", "budget"], name="boardrow_unique_per_point"),
            models.CheckConstraint(condition=Q(budget__gt=0) & Q(budget__lte=1), name="boardrow_budget_in_0_1"),
            models.CheckConstraint(
                condition=Q(average__isnull=True) | (Q(average__gte=0) & Q(average__lte=100)),
                name="boardrow_average_0_100",
            ),
        ]
        indexes = [
            models.Index(fields=["version", "visibility", "-average"], name="boardrow_page_order"),
            models.Index(fields=["version", "method", "budget"], name="boardrow_by_method"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} {self.method}:{self.budget:g} on {self.version_id}"

    @property
    def checks(self) -> list[dict]:
        return list((self.reported or {}).get("checks", []))

    @property
    def threshold(self) -> float | None:
        """The score this row's lengths must reach (a reported row's own, under a relative rule)."""
        if self.reported and "threshold" in self.reported:
            return self.reported["threshold"]
        return None

    @property
    def is_demo(self) -> bool:
        from leaderboard.demo_data import DEMO_ORGANISATION

        return self.organisation == DEMO_ORGANISATION

    @property
    def is_partial(self) -> bool:
        """Shown with a "partial" mark and no effective length: not every cell of the grid is here."""
        return bool(self.partial_reason) or not self.complete


class BoardSnapshot(models.Model):
    """A version's board for one task scope, ranked, as of one board revision (leaderboard/board_snapshots.py).

    Built when the board changes, by the process that changed it, and read by a request instead of the rows. The
    JSON is kept as text: it is decoded once, by the reader, and never queried inside.
    """

    version = models.ForeignKey(BenchmarkVersion, on_delete=models.CASCADE, related_name="board_snapshots")
    scope = models.CharField(max_length=80, blank=True,
                             help_text='"" for all tasks, "category:<name>" or "task:<key>".')
    revision = models.PositiveBigIntegerField(help_text="The version's board_revision the rows were read at or after.")
    row_count = models.PositiveIntegerField()
    head_json = models.TextField(help_text="The first page of entries, in rank order (JSON list).")
    head_html = models.TextField(help_text="The first page's table rows (templates/leaderboard/_board_rows.html).")
    entries_json = models.TextField(help_text="Every entry, in rank order (JSON list).")
    options_json = models.TextField(help_text='The filters\' choices: {"methods": [...], "budgets": [...]}.')
    curves_json = models.TextField(help_text="The degradation chart of the top entries (Plotly JSON).")
    build_ms = models.FloatField(help_text="Time to read, rank and serialise the rows (milliseconds, measured).")
    built_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "scope"], name="boardsnapshot_one_per_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.version_id}:{self.scope or 'all'}@{self.revision}"
