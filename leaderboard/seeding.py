"""Create benchmark versions from the spec file (specs/versions.json); running it twice changes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from evalworkers.benchmark import SpecError, default_max_new_tokens
from leaderboard import versioning
from leaderboard.models import BenchmarkVersion, TaskSpec, VersionStatus

VERSION_FIELDS = ("title", "notes", "seed", "lengths", "samples_per_cell", "effective_length_threshold",
                  "kv_methods", "kv_budgets", "kv_method_budgets", "params")


class SpecFileError(Exception):
    """The spec file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class SeedOutcome:
    slug: str
    action: str  # "created", "unchanged" or "conflict"
    detail: str = ""


def load_spec_file(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecFileError(f"{path}: no such spec file.") from None
    except json.JSONDecodeError as exc:
        raise SpecFileError(f"{path}: not valid JSON ({exc}).") from None
    versions = data.get("versions") if isinstance(data, dict) else None
    if not isinstance(versions, list) or not versions:
        raise SpecFileError(f"{path}: expected an object with a non-empty 'versions' list.")
    for i, entry in enumerate(versions):
        missing = [f for f in ("slug", "title", "seed", "lengths", "tasks") if f not in entry]
        if missing:
            raise SpecFileError(f"{path}: versions[{i}] lacks {', '.join(missing)}.")
    return versions


def _build_draft(entry: dict[str, Any]) -> BenchmarkVersion:
    version = BenchmarkVersion(slug=entry["slug"], **{f: entry[f] for f in VERSION_FIELDS if f in entry})
    version.full_clean()
    version.save()
    for task in entry["tasks"]:
        max_new = task.get("max_new_tokens")
        if max_new is None:  # a long-generation task's limit derives from its reply length
            try:
                max_new = default_max_new_tokens(task["type"], task.get("params", {}))
            except SpecError:
                max_new = 128  # full_clean names the unknown type or bad params
        spec = TaskSpec(version=version, key=task["key"], task_type=task["type"], params=task.get("params", {}),
                        weight=task.get("weight", 1.0), max_new_tokens=max_new)
        spec.full_clean(exclude=["version"])
        spec.save()
    return version


def seed_entry(entry: dict[str, Any]) -> SeedOutcome:
    slug = entry["slug"]
    existing = BenchmarkVersion.objects.filter(slug=slug).first()
    if existing is None:
        try:
            with transaction.atomic():
                version = versioning.publish(_build_draft(entry))
                if entry.get("is_default") and not BenchmarkVersion.objects.filter(is_default=True).exists():
                    versioning.make_default(version)
        except ValidationError as exc:
            raise SpecFileError(f"version '{slug}': {'; '.join(exc.messages)}") from None
        return SeedOutcome(slug, "created", version.spec_hash)
    if existing.status == VersionStatus.DRAFT:
        return SeedOutcome(slug, "conflict", "a draft with this slug exists; publish or delete it in admin")
    # Compare what the file would publish with what is stored, without writing anything.
    with transaction.atomic():
        probe = _build_draft({**entry, "slug": f"tmp-seed-{slug}"[:40]})
        wanted = versioning.spec_hash(probe)
        transaction.set_rollback(True)
    if wanted == existing.spec_hash:
        return SeedOutcome(slug, "unchanged", existing.spec_hash)
    return SeedOutcome(slug, "conflict",
                       f"stored spec hash {existing.spec_hash[:12]} differs from the file's {wanted[:12]}; "
                       "published versions never change: give the new spec a new slug")


def seed_versions(path: Path) -> list[SeedOutcome]:
    return [seed_entry(entry) for entry in load_spec_file(path)]
