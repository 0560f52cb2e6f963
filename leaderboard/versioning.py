"""The life of a benchmark version: draft -> published (hashed, frozen) -> retired; clone; default."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from leaderboard.models import BenchmarkVersion, TaskSpec, VersionStatus


class VersionStateError(ValidationError):
    """An action that the version's current state does not allow."""


def spec_of(version: BenchmarkVersion, tasks: list[TaskSpec] | None = None) -> dict[str, Any]:
    """Everything that decides what a score means — and nothing cosmetic (title, notes)."""
    tasks = list(version.tasks.all()) if tasks is None else tasks
    return {
        "seed": version.seed,
        "lengths": list(version.lengths),
        "samples_per_cell": version.samples_per_cell,
        "effective_length_threshold": float(version.effective_length_threshold),
        "kv_methods": list(version.kv_methods),
        "kv_budgets": [float(b) for b in version.kv_budgets],
        **({"kv_method_budgets": {m: [float(b) for b in v] for m, v in version.kv_method_budgets.items()}}
           if version.kv_method_budgets else {}),  # absent when unused, so earlier versions keep their hash
        "params": version.params,
        "tasks": [
            {"key": t.key, "type": t.task_type, "params": t.params, "weight": float(t.weight),
             "max_new_tokens": t.max_new_tokens}
            for t in sorted(tasks, key=lambda t: t.key)
        ],
    }


def hash_spec(spec: dict[str, Any]) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def spec_hash(version: BenchmarkVersion) -> str:
    return hash_spec(spec_of(version))


@transaction.atomic
def publish(version: BenchmarkVersion) -> BenchmarkVersion:
    version = BenchmarkVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.DRAFT:
        raise VersionStateError(f"'{version.slug}' is {version.status}; only a draft can be published.")
    tasks = list(version.tasks.all())
    if not tasks:
        raise VersionStateError(f"'{version.slug}' has no tasks; add at least one task spec before publishing.")
    version.full_clean()
    for task in tasks:
        try:
            task.full_clean()
        except ValidationError as exc:
            raise VersionStateError(f"Task '{task.key}' is invalid: {'; '.join(exc.messages)}") from None
        task.save()  # stores normalised params, so the hash covers the defaults that will be used
    version.spec_hash = hash_spec(spec_of(version, tasks))
    version.status = VersionStatus.PUBLISHED
    version.published_at = timezone.now()
    version.save()
    return version


@transaction.atomic
def retire(version: BenchmarkVersion) -> BenchmarkVersion:
    version = BenchmarkVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.PUBLISHED:
        raise VersionStateError(f"'{version.slug}' is {version.status}; only a published version can be retired.")
    if version.is_default:
        raise VersionStateError(f"'{version.slug}' is the default version; make another version the default first.")
    version.status = VersionStatus.RETIRED
    version.retired_at = timezone.now()
    version.save()
    return version


@transaction.atomic
def make_default(version: BenchmarkVersion) -> BenchmarkVersion:
    version = BenchmarkVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.PUBLISHED:
        raise VersionStateError(f"'{version.slug}' is {version.status}; only a published version can be the default.")
    BenchmarkVersion.objects.filter(is_default=True).exclude(pk=version.pk).update(is_default=False)
    version.is_default = True
    version.save()
    return version


def free_clone_slug(base: str) -> str:
    for n in range(2, 1000):
        candidate = f"{base}-draft{n}"[:40]
        if not BenchmarkVersion.objects.filter(slug=candidate).exists():
            return candidate
    raise VersionStateError(f"No free slug left for a clone of '{base}'.")


DRAFT_SUFFIX = " (draft)"


def clone_title(title: str) -> str:
    """A clone's title: its source's, without the " (draft)" that clones were once given (the status says it)."""
    while title.endswith(DRAFT_SUFFIX):
        title = title[: -len(DRAFT_SUFFIX)]
    return title


@transaction.atomic
def clone(version: BenchmarkVersion, slug: str | None = None) -> BenchmarkVersion:
    """A new draft with the same spec, to be edited into the next version."""
    draft = BenchmarkVersion.objects.create(
        slug=slug or free_clone_slug(version.slug),
        title=clone_title(version.title),
        notes=f"Cloned from {version.slug}.",
        seed=version.seed,
        lengths=list(version.lengths),
        samples_per_cell=version.samples_per_cell,
        effective_length_threshold=version.effective_length_threshold,
        kv_methods=list(version.kv_methods),
        kv_budgets=list(version.kv_budgets),
        kv_method_budgets=dict(version.kv_method_budgets),
        params=dict(version.params),
        cloned_from=version,
    )
    TaskSpec.objects.bulk_create(
        TaskSpec(version=draft, key=t.key, task_type=t.task_type, category=t.category, params=t.params,
                 weight=t.weight, max_new_tokens=t.max_new_tokens)
        for t in version.tasks.all()
    )
    return draft


def changelog(version: BenchmarkVersion) -> list[str]:
    """What changed from the version it was cloned from, in plain sentences (for the version page)."""
    parent = version.cloned_from
    if parent is None:
        return []
    old, new = spec_of(parent), spec_of(version)
    lines: list[str] = []
    for name in ("seed", "lengths", "samples_per_cell", "effective_length_threshold", "kv_methods", "kv_budgets",
                 "kv_method_budgets", "params"):
        if old.get(name, {}) != new.get(name, {}):
            lines.append(f"{name.replace('_', ' ')}: {old.get(name, {})} -> {new.get(name, {})}")
    before = {t["key"]: t for t in old["tasks"]}
    after = {t["key"]: t for t in new["tasks"]}
    lines += [f"task added: {key}" for key in sorted(after.keys() - before.keys())]
    lines += [f"task removed: {key}" for key in sorted(before.keys() - after.keys())]
    lines += [f"task changed: {key} ({'; '.join(task_differences(before[key], after[key]))})"
              for key in sorted(before.keys() & after.keys()) if before[key] != after[key]]
    return lines


def task_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two tasks of `spec_of`, field by field and parameter by parameter."""
    out = []
    for name in ("type", "weight", "max_new_tokens"):
        if old.get(name) != new.get(name):
            out.append(f"{name.replace('_', ' ')}: {old.get(name)} -> {new.get(name)}")
    old_params, new_params = old.get("params") or {}, new.get("params") or {}
    for name in sorted(old_params.keys() | new_params.keys()):
        if old_params.get(name, "(default)") != new_params.get(name, "(default)"):
            out.append(f"{name}: {_shown(old_params, name)} -> {_shown(new_params, name)}")
    return out


def _shown(params: dict[str, Any], name: str) -> str:
    if name not in params:
        return "(default)"
    value = params[name]
    return "null" if value is None else json.dumps(value) if isinstance(value, bool | str) else str(value)
