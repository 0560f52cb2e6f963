"""The task registry: validation and per-type facts (category, metric, default max new tokens)."""

from __future__ import annotations

from typing import Any

from .errors import SpecError
from .params import clean_params
from .plan import TaskType
from .tasks import aggregation, association, coreference, generation, mixed, niah, qa, threads, tracing

TASK_TYPES: dict[str, TaskType] = {
    t.name: t for mod in (niah, tracing, aggregation, qa, coreference, threads, association, generation, mixed)
    for t in mod.TASKS
}


def get_task_type(task_type: Any) -> TaskType:
    if not isinstance(task_type, str) or task_type not in TASK_TYPES:
        raise SpecError("type", f"unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}")
    return TASK_TYPES[task_type]


def validate_task(task_type: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Params with defaults filled in and keys sorted; raises SpecError naming the field."""
    tt = get_task_type(task_type)
    cleaned = clean_params(tt.params, params)
    if tt.check is not None:
        tt.check(cleaned)
    return cleaned


def category_of(task_type: str) -> str:
    return get_task_type(task_type).category


def metric_of(task_type: str) -> str:
    return get_task_type(task_type).metric


def default_max_new_tokens(task_type: str, params: dict[str, Any] | None = None) -> int:
    """The token limit a spec gets when it names none; a long-generation type's derives from its params."""
    tt = get_task_type(task_type)
    return tt.default_new_tokens(clean_params(tt.params, params) if tt.output_tokens is not None else None)


def output_tokens_of(task_type: str, params: dict[str, Any] | None) -> int | None:
    """The reply length a task asks for in tokens (the output-length axis), None for a short-answer task."""
    tt = get_task_type(task_type)
    return tt.target_output_tokens(clean_params(tt.params, params)) if tt.output_tokens is not None else None


def validate_task_entry(entry: Any, field: str = "task") -> dict[str, Any]:
    """One entry of a version's ``tasks`` array ({key, type, params, max_new_tokens, weight}), normalised."""
    if not isinstance(entry, dict):
        raise SpecError(field, "must be an object")
    unknown = sorted(set(entry) - {"key", "type", "params", "max_new_tokens", "weight"})
    if unknown:
        raise SpecError(f"{unknown[0]}", "unknown field")
    key = entry.get("key")
    if not isinstance(key, str) or not key or not key.replace("_", "").isalnum() or len(key) > 64:
        raise SpecError("key", "must be 1-64 letters, digits or underscores")
    task_type = entry.get("type")
    params = validate_task(task_type, entry.get("params"))
    max_new = entry.get("max_new_tokens", default_max_new_tokens(task_type, params))
    if isinstance(max_new, bool) or not isinstance(max_new, int) or not 1 <= max_new <= 65536:
        raise SpecError("max_new_tokens", "must be an integer between 1 and 65536")
    target = output_tokens_of(task_type, params)
    if target is not None and max_new < target:
        raise SpecError("max_new_tokens", f"must be at least the task's output_tokens ({target}), got {max_new}")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1000:
        raise SpecError("weight", "must be a number between 0 and 1000")
    return {"key": key, "type": task_type, "params": params, "max_new_tokens": max_new, "weight": float(weight)}
