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


def make_completed(version: BenchmarkVersion, name: str, scores: dict[int, float], *, kind: str = "endpoint",
                   points: tuple[tuple[str, float], ...] = (("full", 1.0),), ci: float = 2.0,
                   task_scores: dict[str, dict[int, float]] | None = None, **entry_fields: Any) -> Submission:
    """A completed submission whose every task scores `scores[length]` (minus a step per KV budget), or
    `task_scores[task key][length]` for the tasks given there, with its leaderboard rows computed the way the
    runner does when a submission ends."""
    from django.utils import timezone

    from leaderboard import rows
    from leaderboard.models import Cell

    fields: dict[str, Any] = {"display_name": name, "kind": kind, "parameters_b": 7, "claimed_context": 131072}
    if kind == "endpoint":
        fields.update(endpoint_url="http://127.0.0.1:9/v1", api_model_name=name)
    else:
        fields.update(hf_repo=f"demo/{name}")
    fields.update(entry_fields)
    sub = Submission.objects.create(model=ModelEntry.objects.create(**fields), version=version,
                                    status=SubmissionStatus.COMPLETED, finished_at=timezone.now())
    cells = []
    for task in version.tasks.all():
        for length in version.lengths:
            for method, budget in points:
                base = (task_scores or {}).get(task.key, scores)[length]
                score = max(0.0, base - (1.0 - budget) * 40)
                cells.append(Cell(submission=sub, task=task, length=length, method=method, budget=budget,
                                  status="completed", score=score, ci_low=max(0.0, score - ci),
                                  ci_high=min(100.0, score + ci), samples_total=version.samples_per_cell,
                                  samples_done=version.samples_per_cell, kv_bytes=int(1000 * length * budget)))
    Cell.objects.bulk_create(cells)
    rows.recompute(sub.pk)
    return sub


def make_default_version(slug: str = "t1", **fields: Any) -> BenchmarkVersion:
    """A published version that the submission form preselects."""
    from leaderboard import versioning

    version = make_version(slug, publish=True, **fields)
    versioning.make_default(version)
    version.refresh_from_db()
    return version


def submission_post(**overrides: Any) -> dict[str, Any]:
    """What a person fills into the submission form for an endpoint (override any field)."""
    data: dict[str, Any] = {
        "kind": "endpoint", "display_name": "Llama-Test-8B", "organisation": "Test Lab", "version": "t1",
        "claimed_context": "131072", "parameters_b": "8", "model_card_url": "https://example.org/card",
        "paper_url": "", "endpoint_url": "http://127.0.0.1:9/v1", "api_mode": "chat",
        "api_model_name": "llama-test", "api_key": "", "tokenizer_hint": "", "hf_repo": "", "hf_revision": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def endpoint_submission(base_url: str, slug: str, *, model: str = "fake-model", api_key: str | None = None,
                        lengths: tuple[int, ...] = (512,), samples: int = 4, tasks: int = 1) -> Submission:
    """A queued submission of the endpoint at ``base_url`` on a fresh published version ``slug``."""
    version = make_version(slug, publish=True, tasks=tasks, lengths=list(lengths), samples_per_cell=samples)
    return make_submission(version=version, model=make_entry(endpoint_url=base_url, api_model_name=model),
                           api_key=api_key)


def run_inline(sub: Submission) -> Submission:
    """The same runner the worker calls, in this process (for cases that need no queue)."""
    from evalworkers import runner

    for cell_id in runner.start(sub.pk).cell_ids:
        runner.run_cell(cell_id)
    return Submission.objects.get(pk=sub.pk)


def version_form_data(version: BenchmarkVersion, **changes: Any) -> dict[str, Any]:
    """The admin change form of a version as a browser posts it: structured fields, one input per task parameter."""
    from evalworkers.benchmark import TASK_TYPES

    data: dict[str, Any] = {
        "slug": version.slug, "title": version.title, "notes": version.notes, "seed": version.seed,
        "lengths": ", ".join(str(n) for n in version.lengths), "samples_per_cell": version.samples_per_cell,
        "effective_length_threshold": version.effective_length_threshold,
        "kv_methods": list(version.kv_methods), "kv_budgets": ", ".join(f"{b:g}" for b in version.kv_budgets),
        "params__query_aware": "true" if version.params.get("query_aware") else "false",
        "params__reasoning": "true" if version.params.get("reasoning") else "false",
        "params__answer_prefill": "false" if version.params.get("answer_prefill") is False else "true",
        "params__reasoning_extra_tokens": str(version.params.get("reasoning_extra_tokens", "")),
        "params__system_prompt": version.params.get("system_prompt") or "",
    }
    for method, budgets in version.kv_method_budgets.items():
        data[f"kv_method_budgets__{method}"] = ", ".join(f"{b:g}" for b in budgets)
    tasks = list(version.tasks.all())
    data.update({"tasks-TOTAL_FORMS": len(tasks), "tasks-INITIAL_FORMS": len(tasks), "tasks-MIN_NUM_FORMS": 0,
                 "tasks-MAX_NUM_FORMS": 1000})
    for i, t in enumerate(tasks):
        data.update({f"tasks-{i}-id": t.pk, f"tasks-{i}-version": version.pk, f"tasks-{i}-key": t.key,
                     f"tasks-{i}-task_type": t.task_type, f"tasks-{i}-weight": t.weight,
                     f"tasks-{i}-max_new_tokens": t.max_new_tokens})
        defaults = {k: p.default for k, p in TASK_TYPES[t.task_type].params.items()}
        data.update(task_param_inputs(i, t.task_type, {**defaults, **t.params}))
    data.update(changes)
    return data


def task_param_inputs(row: int, task_type: str, params: dict[str, Any]) -> dict[str, str]:
    """The parameter inputs of task row `row` as posted: numbers as text, true/false, blank for none."""
    def text(value: Any) -> str:
        return "" if value is None else ("true" if value else "false") if isinstance(value, bool) else str(value)

    return {f"tasks-{row}-params__{task_type}__{name}": text(value) for name, value in params.items()}
