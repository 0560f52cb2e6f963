"""The admin's forms for a benchmark version and its tasks: structured fields for a draft, title and notes only
for a frozen version."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from evalworkers.benchmark import TASK_TYPES, SpecError, min_length
from leaderboard import reference_tokens
from leaderboard.models import BenchmarkVersion, TaskSpec
from leaderboard.spec_fields import (
    BudgetsField,
    LengthsField,
    MethodBudgetsField,
    TaskParamsField,
    VersionOptionsField,
    method_choices,
    stored_options,
)


class BenchmarkVersionForm(forms.ModelForm):
    lengths = LengthsField(help_text="Context lengths in tokens, ascending: 4096, 8192 or 4K, 8K (K = 1,024). "
                                     "The shortest must fit every task (checked against the tasks below).")
    kv_methods = forms.MultipleChoiceField(
        choices=method_choices, required=False, widget=forms.CheckboxSelectMultiple, label="KV methods",
        help_text="Methods of the KV registry (evalworkers/kv/registry.py) a local model may run under.")
    kv_budgets = BudgetsField(required=False, label="KV budgets",
                              help_text="Fractions of the full KV cache kept, offered to every chosen compressing "
                                        "method without budgets of its own: 1.0, 0.5, 0.25.")
    kv_method_budgets = MethodBudgetsField(required=False, label="KV budgets per method",
                                           help_text="Only for a chosen method that cannot run at the shared "
                                                     "budgets, or should not.")
    params = VersionOptionsField(required=False, label="Options")

    class Meta:
        model = BenchmarkVersion
        fields = ("slug", "title", "notes", "seed", "lengths", "samples_per_cell", "effective_length_threshold",
                  "kv_methods", "kv_budgets", "kv_method_budgets", "params")

    def clean_params(self) -> dict[str, Any]:
        return stored_options(self.cleaned_data.get("params") or {}, self.instance.params if self.instance.pk
                              else None)


class FrozenVersionForm(forms.ModelForm):
    """A published or retired version: only what does not change a score's meaning."""

    class Meta:
        model = BenchmarkVersion
        fields = ("title", "notes")


class TaskSpecForm(forms.ModelForm):
    task_type = forms.ChoiceField(choices=lambda: [("", "---------")] + [
        (name, f"{name} ({tt.category})") for name, tt in TASK_TYPES.items()])
    params = TaskParamsField(required=False, label="Parameters")

    class Meta:
        model = TaskSpec
        fields = ("key", "task_type", "params", "weight", "max_new_tokens")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        widget = self.fields["params"].widget
        widget.current_type = (self.data.get(self.add_prefix("task_type")) if self.is_bound
                               else self.instance.task_type) or ""


def shortest_length_problem(version: BenchmarkVersion, task: TaskSpec) -> str | None:
    """Why the version's shortest length cannot hold the task (its fixed text, inserts and new tokens), else None."""
    if not version.lengths or not isinstance(version.lengths, list):
        return None
    ref = reference_tokens.counter()
    try:
        need = min_length(task.task_type, task.params, ref.counter, task.max_new_tokens,
                          options=version.render_options)
    except SpecError:
        return None  # the params are refused on their own field
    shortest = min(version.lengths)
    if shortest < need:
        return (f"Lengths: {shortest:,} tokens is too short for {task.key} ({task.task_type}) with "
                f"{task.max_new_tokens} new tokens; it needs at least {need:,} ({ref.name}).")
    return None


class TaskSpecFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        misfits = 0
        for form in self.forms:
            if not form.has_changed() and form.instance.pk is None:
                continue
            if self.can_delete and self._should_delete_form(form):
                continue
            if form.errors or not hasattr(form, "cleaned_data"):
                continue
            problem = shortest_length_problem(self.instance, form.instance)
            if problem:
                form.add_error(None, ValidationError(problem))
                misfits += 1
        if misfits:
            raise ValidationError("A task does not fit the version; see the rows marked below.")
