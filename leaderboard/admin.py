"""Django admin: curating benchmark versions and moderating submissions.

The frozen-version rule lives in the model layer; the admin shows a frozen version read-only and turns the
model's refusals into messages.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from leaderboard import cost, importing, moderation, versioning
from leaderboard.models import (
    BenchmarkVersion,
    Cell,
    ModelEntry,
    ModelKind,
    Submission,
    SubmissionEvent,
    TaskRecord,
    TaskSpec,
    VersionStatus,
    Visibility,
    WorkerHeartbeat,
)
from leaderboard.sample_preview import preview_context
from leaderboard.spec_fields import length_text, params_text
from leaderboard.version_forms import BenchmarkVersionForm, FrozenVersionForm, TaskSpecForm, TaskSpecFormSet


def _apply(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet,
           action: Callable, verb: str) -> None:
    """Run `action` on each selected row; report successes and refusals as admin messages."""
    done = 0
    for obj in queryset:
        try:
            action(obj)
            done += 1
        except ValidationError as exc:
            modeladmin.message_user(request, f"{obj}: {' '.join(exc.messages)}", messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{verb} {done} item(s).", messages.SUCCESS)


def _frozen(obj: BenchmarkVersion | None) -> bool:
    return obj is not None and obj.is_frozen


class TaskSpecInline(admin.TabularInline):
    """A draft's tasks with parameters from each type's schema; a frozen version's tasks, read-only."""

    model = TaskSpec
    form = TaskSpecForm
    formset = TaskSpecFormSet
    extra = 0
    fields = ("key", "task_type", "category", "params", "weight", "max_new_tokens")
    frozen_fields = ("key", "task_type", "category", "parameters", "weight", "max_new_tokens")

    class Media:
        js = ("js/task-params.js",)
        css = {"all": ("css/spec-admin.css",)}

    def get_fields(self, request: HttpRequest, obj: BenchmarkVersion | None = None) -> tuple[str, ...]:
        return self.frozen_fields if _frozen(obj) else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: BenchmarkVersion | None = None) -> tuple[str, ...]:
        return self.frozen_fields if _frozen(obj) else ("category",)

    def get_formset(self, request: HttpRequest, obj: BenchmarkVersion | None = None, **kwargs: object):
        if _frozen(obj):
            kwargs["form"] = forms.ModelForm  # every field read-only: none of the structured inputs
        return super().get_formset(request, obj, **kwargs)

    def has_add_permission(self, request: HttpRequest, obj: BenchmarkVersion | None = None) -> bool:
        return not _frozen(obj) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: BenchmarkVersion | None = None) -> bool:
        return not _frozen(obj) and super().has_delete_permission(request, obj)

    @admin.display(description="parameters")
    def parameters(self, obj: TaskSpec) -> str:
        return params_text(obj.params)


def submission_cost(version: BenchmarkVersion) -> dict[str, cost.CostEstimate]:
    """What one submission on `version` sends, before publishing: an endpoint's, and a local model's that asks for
    every KV point the version offers (``cost.estimate``)."""
    return {"endpoint": cost.estimate(version, kind=ModelKind.ENDPOINT),
            "local": cost.estimate(version, kind=ModelKind.HUGGINGFACE, grid_points=cost.offered_grid(version))}


@admin.register(BenchmarkVersion)
class BenchmarkVersionAdmin(admin.ModelAdmin):
    form = BenchmarkVersionForm
    inlines = (TaskSpecInline,)
    list_display = ("slug", "title", "status", "is_default", "lengths", "samples_per_cell", "task_count",
                    "published_at")
    list_filter = ("status", "is_default")
    search_fields = ("slug", "title")
    state_fields = ("status", "is_default", "spec_hash", "cloned_from", "published_at", "retired_at")
    readonly_fields = state_fields
    frozen_spec_fields = ("slug", "seed", "lengths_text", "samples_per_cell", "effective_length_threshold",
                          "kv_text", "options_text")
    actions = ("publish_versions", "retire_versions", "clone_versions", "make_default_version")

    @admin.display(description="tasks")
    def task_count(self, obj: BenchmarkVersion) -> int:
        return obj.tasks.count()

    @admin.display(description="lengths")
    def lengths_text(self, obj: BenchmarkVersion) -> str:
        return f"{', '.join(length_text(n) for n in obj.lengths)} ({', '.join(str(n) for n in obj.lengths)} tokens)"

    @admin.display(description="KV methods and budgets")
    def kv_text(self, obj: BenchmarkVersion) -> str:
        own = "; ".join(f"{m} at {', '.join(f'{b:g}' for b in bs)}" for m, bs in obj.kv_method_budgets.items())
        shared = ", ".join(f"{float(b):g}" for b in obj.kv_budgets) or "none"
        return f"{', '.join(obj.kv_methods) or 'none'} at budgets {shared}" + (f"; own budgets: {own}" if own else "")

    @admin.display(description="options")
    def options_text(self, obj: BenchmarkVersion) -> str:
        return params_text(obj.params)

    def get_form(self, request: HttpRequest, obj: BenchmarkVersion | None = None, change: bool = False,
                 **kwargs: object):
        if _frozen(obj):
            kwargs["form"] = FrozenVersionForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: BenchmarkVersion | None = None) -> list:
        if _frozen(obj):
            return [(None, {"fields": ("title", "notes")}),
                    ("Spec (read-only: clone into a new draft to change it)", {"fields": self.frozen_spec_fields}),
                    ("State", {"fields": self.state_fields})]
        return [(None, {"fields": ("slug", "title", "notes")}),
                ("Spec", {"fields": ("seed", "lengths", "samples_per_cell", "effective_length_threshold")}),
                ("KV cache", {"fields": ("kv_methods", "kv_budgets", "kv_method_budgets")}),
                ("Options", {"fields": ("params",)}),
                ("State", {"fields": self.state_fields})]

    def get_readonly_fields(self, request: HttpRequest, obj: BenchmarkVersion | None = None) -> tuple[str, ...]:
        return self.frozen_spec_fields + self.state_fields if _frozen(obj) else self.state_fields

    def get_urls(self) -> list:
        extra = [
            path("<path:object_id>/clone/", self.admin_site.admin_view(self.clone_view),
                 name="leaderboard_benchmarkversion_clone"),
            path("<path:object_id>/publish/", self.admin_site.admin_view(self.publish_view),
                 name="leaderboard_benchmarkversion_publish"),
            path("<path:object_id>/preview/", self.admin_site.admin_view(self.preview_view),
                 name="leaderboard_benchmarkversion_preview"),
        ]
        return extra + super().get_urls()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context = {**(extra_context or {}), "cost": submission_cost(obj),
                             "changes": versioning.changelog(obj) if obj.cloned_from_id else None}
        return super().change_view(request, object_id, form_url, extra_context)

    def clone_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return redirect("admin:leaderboard_benchmarkversion_change", object_id)
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_add_permission(request):
            raise PermissionDenied
        try:
            draft = versioning.clone(obj)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return redirect("admin:leaderboard_benchmarkversion_change", object_id)
        self.message_user(request, f"Cloned '{obj.slug}' into the draft '{draft.slug}': change its spec here, "
                          "check its samples, then publish it.", messages.SUCCESS)
        return redirect("admin:leaderboard_benchmarkversion_change", draft.pk)

    def publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if request.method == "POST":
            if obj is None or not self.has_change_permission(request, obj):
                raise PermissionDenied
            _apply(self, request, self.get_queryset(request).filter(pk=obj.pk), versioning.publish, "Published")
        return redirect("admin:leaderboard_benchmarkversion_change", object_id)

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_permission(request, obj):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "original": obj,
                   "title": f"Samples of {obj.slug}", **preview_context(obj, request.GET)}
        return TemplateResponse(request, "admin/leaderboard/benchmarkversion/preview.html", context)

    def has_delete_permission(self, request: HttpRequest, obj: BenchmarkVersion | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.status == VersionStatus.DRAFT)

    @admin.action(description="Publish (compute the spec hash and freeze)")
    def publish_versions(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, versioning.publish, "Published")

    @admin.action(description="Retire")
    def retire_versions(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, versioning.retire, "Retired")

    @admin.action(description="Clone into a new draft")
    def clone_versions(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, versioning.clone, "Cloned")

    @admin.action(description="Make the default version")
    def make_default_version(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to make the default.", messages.ERROR)
            return
        _apply(self, request, queryset, versioning.make_default, "Made default:")


@admin.register(ModelEntry)
class ModelEntryAdmin(admin.ModelAdmin):
    list_display = ("display_name", "organisation", "kind", "api_model_name", "hf_repo", "parameters_b",
                    "claimed_context")
    list_filter = ("kind",)
    search_fields = ("display_name", "organisation", "api_model_name", "hf_repo")


class SubmissionEventInline(admin.TabularInline):
    model = SubmissionEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "action", "actor", "note")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ImportResultsForm(forms.Form):
    version = forms.ModelChoiceField(queryset=BenchmarkVersion.objects.browsable(), empty_label=None)
    file = forms.FileField(help_text="lm-evaluation-harness results (.json) or a CSV with model,task,length,score.")
    model = forms.CharField(max_length=120, required=False, help_text="Model name (for a .json file).")
    organisation = forms.CharField(max_length=120, required=False)
    source = forms.CharField(max_length=500, required=False, help_text="Where the numbers come from.")
    skip_unknown = forms.BooleanField(
        required=False, label="Skip unknown tasks",
        help_text="Import a file with tasks this version does not know, leaving them out; the row is marked partial.")
    replace = forms.BooleanField(
        required=False, label="Replace earlier imports",
        help_text="Replace an earlier import of the same file, or of the same model on this version.")

    MAX_BYTES = 5 * 1024 * 1024

    def clean(self) -> dict:
        data = super().clean()
        upload, version = data.get("file"), data.get("version")
        if upload is None or version is None:
            return data
        if upload.size > self.MAX_BYTES:
            raise ValidationError("The file is larger than 5 MB.")
        name = upload.name.lower()
        skip = bool(data.get("skip_unknown"))
        try:
            content = upload.read()
            text = content.decode("utf-8")
            if name.endswith(".json"):
                if not data.get("model"):
                    raise ValidationError("Give the model's name for an lm-evaluation-harness file.")
                data["models"] = [importing.parse_lm_eval(text, version, data["model"], skip_unknown=skip)]
            elif name.endswith(".csv"):
                data["models"] = importing.parse_csv(text, version, skip_unknown=skip)
            else:
                raise ValidationError("Upload a .json (lm-evaluation-harness) or .csv file.")
            data["sha256"] = importing.file_hash(content)
            importing.check_new(data["models"], version, data["sha256"], replace=bool(data.get("replace")))
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text.") from None
        except importing.ImportFileError as exc:
            raise ValidationError(f"{exc} Nothing was imported.") from None
        return data


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ("id", "model", "version", "status", "visibility", "progress", "run_number", "submitter",
                    "created_at")
    list_filter = ("status", "version", "visibility", "model__kind", "is_baseline")
    search_fields = ("model__display_name", "model__api_model_name", "submitter__username")
    list_select_related = ("model", "version", "submitter")
    # Visibility and the baseline mark change only through the logged actions below (and the status page).
    readonly_fields = ("status", "visibility", "is_baseline", "has_api_key", "run_number", "failure_reason",
                       "probe_result", "cells_total", "cells_done", "samples_total", "samples_done",
                       "samples_errored", "created_at", "queued_at", "started_at", "finished_at")
    fields = ("model", "version", "submitter", "kv_methods", "kv_budgets", "public_note", *readonly_fields)
    inlines = (SubmissionEventInline,)
    actions = ("approve", "cancel", "rerun", "hide", "show", "flag", "mark_baseline", "unmark_baseline")
    change_list_template = "admin/leaderboard/submission/change_list.html"

    def get_urls(self) -> list:
        extra = [path("import/", self.admin_site.admin_view(self.import_results), name="leaderboard_import")]
        return extra + super().get_urls()

    def import_results(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportResultsForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                subs = importing.save(data["models"], data["version"], organisation=data["organisation"],
                                      source=data["source"], sha256=data["sha256"], replace=bool(data["replace"]))
            except importing.ImportFileError as exc:  # imported by someone else since the form was checked
                form.add_error(None, f"{exc} Nothing was imported.")
            else:
                skipped = sorted({t for m in data["models"] for t in m.skipped})
                note = f" Skipped {', '.join(skipped)}: the row is marked partial." if skipped else ""
                self.message_user(request, f"Imported {len(subs)} reported model(s) into {data['version'].slug}."
                                  f"{note}", messages.WARNING if skipped else messages.SUCCESS)
                return redirect("admin:leaderboard_submission_changelist")
        context = {**self.admin_site.each_context(request), "form": form, "title": "Import reported results",
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/leaderboard/import_results.html", context)

    @admin.display(description="progress")
    def progress(self, obj: Submission) -> str:
        return f"{obj.cells_done}/{obj.cells_total} cells"

    @admin.display(boolean=True, description="API key stored")
    def has_api_key(self, obj: Submission) -> bool:
        return obj.has_api_key

    @admin.action(description="Approve and queue")
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, lambda s: moderation.approve(s, request.user), "Approved")

    @admin.action(description="Cancel")
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, lambda s: moderation.cancel(s, request.user), "Cancelled")

    @admin.action(description="Re-run (replaces the results)")
    def rerun(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, lambda s: moderation.rerun(s, request.user), "Re-queued")

    @admin.action(description="Hide from the leaderboard")
    def hide(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, lambda s: moderation.hide(s, request.user), "Hid")

    @admin.action(description="Make public on the leaderboard")
    def show(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, lambda s: moderation.set_visibility(s, request.user, Visibility.PUBLIC),
               "Made public")

    @admin.action(description="Mark as baseline")
    def mark_baseline(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, lambda s: moderation.set_baseline(s, request.user, True), "Marked")

    @admin.action(description="Remove the baseline mark")
    def unmark_baseline(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset, lambda s: moderation.set_baseline(s, request.user, False), "Unmarked")

    @admin.action(description="Flag (uses each submission's public note)")
    def flag(self, request: HttpRequest, queryset: QuerySet) -> None:
        _apply(self, request, queryset,
               lambda s: moderation.set_visibility(s, request.user, Visibility.FLAGGED,
                                                   s.public_note or "Flagged by the maintainers for review."),
               "Flagged")


@admin.register(Cell)
class CellAdmin(admin.ModelAdmin):
    list_display = ("submission", "task", "length", "method", "budget", "status", "score", "samples_done",
                    "samples_errored")
    list_filter = ("status", "method", "submission__version")
    list_select_related = ("submission", "task")


@admin.register(TaskRecord)
class TaskRecordAdmin(admin.ModelAdmin):
    list_display = ("task_name", "task_id", "queue", "state", "worker", "created_at", "finished_at")
    list_filter = ("state", "queue", "task_name")


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("worker", "queue", "seen_at")
