"""Small builders for test rows (plain functions; no factory library needed for this few)."""

from __future__ import annotations

from typing import Any

from leaderboard import versioning
from leaderboard.models import BenchmarkVersion, ModelEntry, Submission, SubmissionStatus, TaskSpec


def make_version(slug: str = "t1", *, publish: bool = False, tasks: int = 1, **fields: Any) -> BenchmarkVersion:
    values: dict[str, Any] = {"title": f"Version {slug}", "seed": 11, "lengths": [512, 1024],
                              "samples_per_cell": 3, "kv_methods": ["full"], "kv_budgets": [1.0]}
    values.update(fields)
    version = BenchmarkVersion.objects.create(slug=slug, **values)
    for i in range(tasks):
        spec = TaskSpec(version=version, key=f"niah_{i}", task_type="niah_single", params={}, max_new_tokens=32)
        spec.full_clean()
        spec.save()
    return versioning.publish(version) if publish else version


def make_entry(**fields: Any) -> ModelEntry:
    values: dict[str, Any] = {"display_name": "Test model", "endpoint_url": "http://127.0.0.1:9/v1",
                              "api_model_name": "test-model"}
    values.update(fields)
    return ModelEntry.objects.create(**values)


def make_submission(*, version: BenchmarkVersion | None = None, api_key: str | None = None,
                    status: str = SubmissionStatus.QUEUED, **fields: Any) -> Submission:
    version = version or BenchmarkVersion.objects.filter(slug="t1").first() or make_version(publish=True)
    sub = Submission(model=fields.pop("model", None) or make_entry(), version=version, status=status, **fields)
    sub.set_api_key(api_key)
    sub.save()
    return sub
