"""A row of an external benchmark's published table, kept as its authors published it (figures as text, exactly),
with where it came from. Its submission (kind "reported", completed, no cells) gives it a leaderboard row, computed
from these figures by leaderboard/reported.py."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from leaderboard.models.submissions import Submission
from leaderboard.models.versions import BenchmarkVersion


class ReportedResult(models.Model):
    version = models.ForeignKey(BenchmarkVersion, on_delete=models.CASCADE, related_name="reported_results")
    submission = models.OneToOneField(Submission, on_delete=models.CASCADE, related_name="reported_result")
    label = models.CharField(max_length=200, help_text="The model's name as the table prints it, e.g. 'Yi (34B)'.")
    line = models.PositiveIntegerField(help_text="Its line in the data file (data/reported/).")
    source_url = models.URLField(max_length=500, help_text="The published table (with the commit).")
    link = models.URLField(max_length=500, blank=True, help_text="The model's link as the table gives it.")
    notes = models.TextField(blank=True, help_text="How the figures were obtained, from the publication's notes.")
    base_score = models.FloatField(null=True, blank=True,
                                   help_text="The model's short-context base score (0-100), where the table has one.")
    scores_by_length = models.JSONField(
        default=dict, help_text='{"4096": 96.7, ...}: the published per-length scores (0-100); null where none.')
    published = models.JSONField(
        default=dict, help_text="Every published figure as printed: effective length, average, weighted averages "
                                "and their ranks, threshold, claimed length; '' where the table has none.")
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("version", "line")
        constraints = [
            models.UniqueConstraint(fields=["version", "label"], name="reported_unique_label_per_version"),
            models.CheckConstraint(
                condition=Q(base_score__isnull=True) | (Q(base_score__gte=0) & Q(base_score__lte=100)),
                name="reported_base_score_0_100"),
        ]

    def __str__(self) -> str:
        return f"{self.label} on {self.version_id} (line {self.line})"
