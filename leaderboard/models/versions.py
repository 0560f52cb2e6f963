"""Benchmark versions and their task specs. A published version is frozen, here in the model layer."""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from evalworkers.benchmark import RenderOptions, SpecError, category_of, turns_of, validate_task
from evalworkers.benchmark.registry import output_tokens_of
from evalworkers.kv import registry as kv_registry

KNOWN_KV_METHODS = tuple(kv_registry.METHODS)  # the worker's registry is the one list of methods


# The generator sizes any length; past 1M tokens (the longest window models claim) a sample takes seconds to build
# and a cell hours to run, so a measured version stops there.
LONGEST_LENGTH = 1 << 20


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    RETIRED = "retired", "Retired"


class TaskCategory(models.TextChoices):
    RETRIEVAL = "retrieval", "Retrieval"
    TRACING = "tracing", "Multi-hop tracing"
    AGGREGATION = "aggregation", "Aggregation"
    QA = "qa", "Question answering"
    GENERATION = "generation", "Long generation"
    MIXED = "mixed", "Mixed kinds over one context"


class VersionOrigin(models.TextChoices):
    """Where a version's scores come from: measured here by our workers, or reported by an external benchmark's
    authors (a table carried over from their publication; such a version never takes a submission)."""

    MEASURED = "measured", "Measured here"
    REPORTED = "reported", "Reported by the benchmark's authors"


class EffectiveLengthRule(models.TextChoices):
    """How a version's effective length is decided from the per-length scores (always computed by us).

    ABSOLUTE: the longest length up to which every score reaches the threshold (RULER: 85.6, Llama-2-7B-chat at 4K).
    RELATIVE: the same with the threshold taken as a percentage of the model's own base score (NoLiMa: 85% of its
    short-context score); only reported rows carry a base score, so only reported versions use it."""

    ABSOLUTE = "absolute", "Absolute threshold"
    RELATIVE = "relative", "Percentage of the model's base score"


class FrozenVersionError(ValidationError):
    """Raised when something tries to change what a published version measures."""


def frozen_message(version_slug: str, fields: list[str]) -> str:
    return (
        f"Benchmark version '{version_slug}' is published, so its {', '.join(sorted(fields))} cannot change: "
        "scores already recorded against it would stop meaning the same thing. "
        "Clone it into a new draft and change the draft instead."
    )


class BenchmarkVersionQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        frozen = sorted(set(kwargs) & set(BenchmarkVersion.FROZEN_FIELDS))
        if frozen:
            locked = self.exclude(status=VersionStatus.DRAFT).values_list("slug", flat=True).first()
            if locked is not None:
                raise FrozenVersionError(frozen_message(locked, frozen))
        return super().update(**kwargs)

    def published(self) -> BenchmarkVersionQuerySet:
        return self.filter(status=VersionStatus.PUBLISHED)

    def browsable(self) -> BenchmarkVersionQuerySet:
        return self.exclude(status=VersionStatus.DRAFT)

    def submittable(self) -> BenchmarkVersionQuerySet:
        """Published versions that take submissions: never a reported one (its scores are someone else's)."""
        return self.published().filter(origin=VersionOrigin.MEASURED)

    def default(self) -> BenchmarkVersion | None:
        """The default version (at most one, always published: a constraint), or None; the one place that
        says which version a page, the form or a command uses when none is named."""
        return self.filter(is_default=True).first()


# RULER (Hsieh et al. 2024, section 4): a length is effective when the score passes Llama-2-7B's at 4K.
RULER_THRESHOLD = 85.6


class BenchmarkVersion(models.Model):
    FROZEN_FIELDS: ClassVar[tuple[str, ...]] = (
        "slug", "seed", "lengths", "samples_per_cell", "effective_length_threshold",
        "kv_methods", "kv_budgets", "kv_method_budgets", "params", "spec_hash", "origin", "effective_length_rule",
        "reported_tasks",
    )

    slug = models.SlugField(max_length=40, unique=True, help_text="Short stable name used in URLs, e.g. v1.")
    title = models.CharField(max_length=200)
    notes = models.TextField(blank=True, help_text="What this version measures and how it differs from the last.")
    status = models.CharField(max_length=12, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    seed = models.PositiveBigIntegerField(help_text="Every sample is a function of this seed, the task and the index.")
    lengths = models.JSONField(help_text="Context lengths in tokens, ascending, e.g. [4096, 8192, 16384].")
    samples_per_cell = models.PositiveIntegerField(default=100)
    effective_length_threshold = models.FloatField(
        default=RULER_THRESHOLD, help_text="Score (0-100) a length must reach to count as effective (RULER: 85.6)."
    )
    effective_length_rule = models.CharField(
        max_length=12, choices=EffectiveLengthRule.choices, default=EffectiveLengthRule.ABSOLUTE,
        help_text="Absolute: the threshold is a score (0-100). Relative: it is a percentage of each model's own base "
                  "score (NoLiMa: 85); reported versions only.")
    origin = models.CharField(
        max_length=12, choices=VersionOrigin.choices, default=VersionOrigin.MEASURED,
        help_text="Reported: an external benchmark's published table; never offered for submissions.")
    benchmark_name = models.CharField(max_length=60, blank=True,
                                      help_text="The external benchmark a reported version carries over, e.g. RULER.")
    source_url = models.URLField(max_length=500, blank=True,
                                 help_text="Where a reported version's table was published (with the commit).")
    reported_tasks = models.JSONField(
        default=list, blank=True, help_text="A reported version's tasks or task groups, as its authors name them.")
    kv_methods = models.JSONField(default=list, blank=True, help_text='KV methods offered, e.g. ["full", "snapkv"].')
    kv_budgets = models.JSONField(default=list, blank=True, help_text="KV budgets offered, fractions in (0, 1].")
    kv_method_budgets = models.JSONField(
        default=dict, blank=True,
        help_text='Budgets for one method instead of the shared ones, e.g. {"think": [0.8, 0.7]} (ThinK prunes '
                  "2(1 - b) of its key channels, so it cannot run at 0.5 or below).")
    params = models.JSONField(default=dict, blank=True, help_text="Version options: query_aware, reasoning, ...")
    spec_hash = models.CharField(max_length=64, blank=True, editable=False)
    is_default = models.BooleanField(default=False, editable=False)
    cloned_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="clones", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)
    board_changed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When any of its leaderboard rows last changed."
    )
    board_revision = models.PositiveBigIntegerField(
        default=0, editable=False,
        help_text="Counts the changes of its leaderboard rows: the key of cached pages and of stored board snapshots.")

    objects = BenchmarkVersionQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="version_single_default"),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(status=VersionStatus.PUBLISHED), name="version_default_is_published"
            ),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(origin=VersionOrigin.MEASURED), name="version_default_is_measured"
            ),
            models.CheckConstraint(
                condition=Q(effective_length_rule=EffectiveLengthRule.ABSOLUTE) | Q(origin=VersionOrigin.REPORTED),
                name="version_relative_rule_is_reported",
            ),
            models.CheckConstraint(condition=Q(samples_per_cell__gt=0), name="version_samples_positive"),
            models.CheckConstraint(
                condition=Q(effective_length_threshold__gte=0) & Q(effective_length_threshold__lte=100),
                name="version_threshold_0_100",
            ),
            models.CheckConstraint(
                condition=Q(status=VersionStatus.DRAFT) | ~Q(spec_hash=""), name="version_published_has_hash"
            ),
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="version_status_created")]

    def __str__(self) -> str:
        return f"{self.slug} ({self.get_status_display().lower()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        changed = self.frozen_changes()
        if changed:
            raise FrozenVersionError(frozen_message(self.slug, changed))
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if self.pk and type(self).objects.filter(pk=self.pk).exclude(status=VersionStatus.DRAFT).exists():
            raise FrozenVersionError(
                f"Benchmark version '{self.slug}' is published or retired and cannot be deleted; retire it instead."
            )
        return super().delete(*args, **kwargs)

    @property
    def is_frozen(self) -> bool:
        return self.status != VersionStatus.DRAFT

    @property
    def is_reported(self) -> bool:
        return self.origin == VersionOrigin.REPORTED

    def threshold_for(self, base_score: float | None) -> float | None:
        """The score a length must reach for this version's effective length: the threshold itself, or (relative
        rule) that percentage of the model's base score; None when the rule needs a base score and there is none."""
        if self.effective_length_rule == EffectiveLengthRule.RELATIVE:
            return None if base_score is None else self.effective_length_threshold * base_score / 100.0
        return self.effective_length_threshold

    @property
    def rule_text(self) -> str:
        """The effective-length rule in words, for pages."""
        if self.effective_length_rule == EffectiveLengthRule.RELATIVE:
            return (f"the longest length up to which every score stays at or above "
                    f"{self.effective_length_threshold:g}% of the model's own base score")
        text = f"the longest length up to which every score stays at or above {self.effective_length_threshold:g}"
        if self.effective_length_threshold == RULER_THRESHOLD:
            text += f" (RULER's threshold: Llama-2-7B's score at 4K, {RULER_THRESHOLD:g}, in the RULER paper)"
        return text

    @property
    def max_length(self) -> int:
        return max(self.lengths) if self.lengths else 0

    @property
    def render_options(self) -> RenderOptions:
        return RenderOptions.from_version_params(self.params)

    @property
    def reasoning_extra_tokens(self) -> int | None:
        """New tokens each task adds for thinking (inside the length), or None: the version expects direct
        answers, and the probe refuses a model that reasons."""
        options = self.render_options
        return options.reasoning_extra_tokens if options.reasoning else None

    def _kv_points(self) -> tuple[dict[str, list[float]], list[tuple[str, float, str]]]:
        return kv_registry.offered_points(list(self.kv_methods or []), [float(b) for b in self.kv_budgets or []],
                                          self.kv_method_budgets or {},
                                          context_tokens=min(self.lengths) if self.lengths else None)

    def kv_offered(self) -> dict[str, list[float]]:
        """{method: budgets below 1.0} this version runs: each method's own budgets or the shared ones, less any
        pair the KV registry refuses (so a version published before a refusal never runs it)."""
        return self._kv_points()[0]

    def kv_refused(self) -> list[tuple[str, float, str]]:
        """(method, budget, why) for the listed pairs the KV registry refuses; shown on the version's page."""
        return self._kv_points()[1]

    def frozen_changes(self) -> list[str]:
        """Frozen fields that differ from the stored row of a published or retired version."""
        if self.pk is None:
            return []
        stored = type(self).objects.filter(pk=self.pk).values(*self.FROZEN_FIELDS, "status").first()
        if stored is None or stored["status"] == VersionStatus.DRAFT:
            return []
        return [f for f in self.FROZEN_FIELDS if stored[f] != getattr(self, f)]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        lengths = self.lengths
        if not isinstance(lengths, list) or not lengths or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in lengths
        ):
            errors["lengths"] = "Give a non-empty list of whole token counts, e.g. [4096, 8192]."
        elif any(n <= 0 for n in lengths):
            errors["lengths"] = "Every length must be a positive number of tokens."
        elif lengths != sorted(set(lengths)):
            errors["lengths"] = "List each length once, in ascending order."
        elif lengths[-1] > LONGEST_LENGTH and self.origin != VersionOrigin.REPORTED:
            errors["lengths"] = (f"{lengths[-1]:,} tokens is past the longest length a measured version may have "
                                 f"({LONGEST_LENGTH:,} tokens, 1M).")
        budgets = self.kv_budgets
        if not isinstance(budgets, list) or not all(
            isinstance(b, int | float) and not isinstance(b, bool) and 0 < b <= 1 for b in budgets
        ):
            errors["kv_budgets"] = "Budgets are fractions of the full KV cache kept, each in (0, 1], e.g. [1.0, 0.5]."
        methods = self.kv_methods
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            errors["kv_methods"] = "Give a list of method names."
        else:
            unknown = [m for m in methods if m not in KNOWN_KV_METHODS]
            if unknown:
                errors["kv_methods"] = (
                    f"Unknown KV method(s) {', '.join(unknown)}; known: {', '.join(KNOWN_KV_METHODS)}."
                )
        per_method = self.kv_method_budgets
        if not isinstance(per_method, dict) or not all(
            isinstance(v, list) and v and all(isinstance(b, int | float) and not isinstance(b, bool) and 0 < b <= 1
                                              for b in v) for v in per_method.values()
        ):
            errors["kv_method_budgets"] = ('Give each method its own list of fractions in (0, 1], e.g. '
                                           '{"think": [0.8, 0.7]}.')
        elif "kv_methods" not in errors:
            strays = [m for m in per_method if m not in methods or m == "full"]
            if strays:
                errors["kv_method_budgets"] = (f"{', '.join(strays)} must be among the version's compressing KV "
                                               "methods to have budgets of its own.")
        if not errors and self.status == VersionStatus.DRAFT:
            refused = self.kv_refused()
            if refused:
                name, _, why = refused[0]
                points = ", ".join(f"{p:g}" for p in kv_registry.METHODS[name].budgets.points)
                field = "kv_method_budgets" if name in per_method else "kv_budgets"
                errors[field] = (f"{why}. Give {name} budgets it can honour in KV method budgets, e.g. "
                                 f'{{"{name}": [{points}]}}.')
        if not isinstance(self.params, dict):
            errors["params"] = "Version params must be a JSON object."
        if errors:
            raise ValidationError(errors)
        changed = self.frozen_changes()
        if changed:
            raise FrozenVersionError(frozen_message(self.slug, changed))


class TaskSpecQuerySet(models.QuerySet):
    def _refuse_if_frozen(self) -> None:
        locked = self.exclude(version__status=VersionStatus.DRAFT).values_list("version__slug", flat=True).first()
        if locked is not None:
            raise FrozenVersionError(frozen_message(locked, ["tasks"]))

    def update(self, **kwargs: Any) -> int:
        self._refuse_if_frozen()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        self._refuse_if_frozen()
        return super().delete()


class TaskSpec(models.Model):
    SPEC_FIELDS: ClassVar[tuple[str, ...]] = ("version_id", "key", "task_type", "params", "weight", "max_new_tokens")

    version = models.ForeignKey(BenchmarkVersion, on_delete=models.CASCADE, related_name="tasks")
    key = models.SlugField(max_length=60, help_text="Name shown on the leaderboard, e.g. niah_single_1.")
    task_type = models.CharField(max_length=40, help_text="Registered task type, e.g. niah_single.")
    category = models.CharField(max_length=12, choices=TaskCategory.choices, editable=False)
    params = models.JSONField(default=dict, blank=True, help_text="Task parameters; defaults are filled in.")
    weight = models.FloatField(default=1.0)
    max_new_tokens = models.PositiveIntegerField(default=128)

    objects = TaskSpecQuerySet.as_manager()

    class Meta:
        ordering = ("version", "key")
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="taskspec_unique_key_per_version"),
            models.CheckConstraint(condition=Q(weight__gt=0), name="taskspec_weight_positive"),
            models.CheckConstraint(condition=Q(max_new_tokens__gt=0), name="taskspec_max_new_tokens_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.task_type})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._version_is_frozen() and self._differs_from_stored():
            raise FrozenVersionError(frozen_message(self.version.slug, ["tasks"]))
        if not self.category:
            self.category = category_of(self.task_type)
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if self._version_is_frozen():
            raise FrozenVersionError(frozen_message(self.version.slug, ["tasks"]))
        return super().delete(*args, **kwargs)

    @property
    def turns(self) -> int:
        """Questions asked about each sample's context: 1, or more in the shared-context mode (``params.turns``)."""
        return turns_of(self.params or {})

    def _version_is_frozen(self) -> bool:
        if self.version_id is None:
            return False
        return BenchmarkVersion.objects.filter(pk=self.version_id).exclude(status=VersionStatus.DRAFT).exists()

    def _differs_from_stored(self) -> bool:
        if self.pk is None:
            return True
        stored = type(self).objects.filter(pk=self.pk).values(*self.SPEC_FIELDS).first()
        return stored is None or any(stored[f] != getattr(self, f) for f in self.SPEC_FIELDS)

    @property
    def output_tokens(self) -> int | None:
        """The reply length a long-generation task asks for, in tokens (the output-length axis); None for a
        short-answer task or a type this release does not know."""
        try:
            return output_tokens_of(self.task_type, self.params)
        except SpecError:
            return None

    def clean(self) -> None:
        try:
            self.params = validate_task(self.task_type, self.params or {})
            self.category = category_of(self.task_type)
        except SpecError as exc:
            field = "task_type" if exc.field == "type" else "params"
            raise ValidationError({field: str(exc)}) from None
        target = self.output_tokens
        if target is not None and self.max_new_tokens is not None and self.max_new_tokens < target:
            raise ValidationError({"max_new_tokens": f"Must be at least the task's output_tokens ({target}): the "
                                                     f"reply it asks for would be cut off."})
        if self._version_is_frozen() and self._differs_from_stored():
            raise FrozenVersionError(frozen_message(self.version.slug, ["tasks"]))
