"""Local Hugging Face models in the runner: settings -> backend, the pre-flight check, per-cell efficiency."""

from __future__ import annotations

from statistics import fmean
from typing import Any

from django.conf import settings

from evalworkers.backends.local import LocalBackend, LocalModelConfig, ModelLoadError, load
from evalworkers.evaluation import SampleOutcome
from evalworkers.kv import registry


class SubmissionNotRunnable(Exception):
    """The submission cannot start; the message is shown to the submitter."""


def query_aware(version: Any) -> bool:
    return bool((version.params or {}).get("query_aware", False))


def config_for(source: str, revision: str | None = None, *, aware: bool = False) -> LocalModelConfig:
    return LocalModelConfig(
        source=source, revision=revision or None, models_dir=settings.EVAL_MODELS_DIR,
        device=settings.EVAL_LOCAL_DEVICE, dtype=settings.EVAL_LOCAL_DTYPE, offline=settings.EVAL_LOCAL_OFFLINE,
        files_dir=settings.KV_FILES_DIR, memory_limit_bytes=settings.EVAL_LOCAL_MEMORY_LIMIT_BYTES or None,
        query_aware=aware,
    )


def _config(sub: Any) -> LocalModelConfig:
    return config_for(sub.model.hf_repo, sub.model.hf_revision, aware=query_aware(sub.version))


def check_grid(methods: list[str], budgets: list[float], *, offered: dict[str, list[float]],
               refused: list[tuple[str, float, str]] | None = None, model_name: str = "",
               context_tokens: int | None = None) -> list[tuple[str, float]]:
    """The (method, budget) pairs a request runs, or SubmissionNotRunnable naming a method or budget the version
    does not offer, or one the KV registry refuses (a budget it cannot honour, files it lacks)."""
    try:
        points = registry.requested_points(methods, budgets, offered, refused or [])
    except registry.MethodError as exc:
        raise SubmissionNotRunnable(str(exc)) from None
    problem = registry.unrunnable(points, files_dir=settings.KV_FILES_DIR, model_name=model_name,
                                  context_tokens=context_tokens)
    if problem is not None:
        raise SubmissionNotRunnable(problem[1])
    return points


def check(sub: Any) -> None:
    """The local pre-flight: methods and budgets valid, the model loads, its window holds the longest length."""
    from leaderboard.models import Submission

    check_grid(list(sub.kv_methods), [float(b) for b in sub.kv_budgets], offered=sub.version.kv_offered(),
               refused=sub.version.kv_refused(), model_name=sub.model.hf_repo,
               context_tokens=min(sub.version.lengths))
    try:
        loaded = load(_config(sub))
    except ModelLoadError as exc:
        Submission.objects.filter(pk=sub.pk).update(
            probe_result={"ok": False, "kind": "local", "code": "model_load", "message": str(exc)})
        raise SubmissionNotRunnable(str(exc)) from None
    facts = {"ok": True, "kind": "local", "query_aware": query_aware(sub.version), **loaded.describe()}
    facts["message"] = (f"loaded {facts['model']} ({facts['architecture']}, {facts['layers']} layers, "
                        f"{facts['dtype'].removeprefix('torch.')} on {facts['device']}"
                        + (f", {facts['context_window']:,}-token window" if facts["context_window"] else "")
                        + f") in {facts['load_s']:.1f}s")
    facts["server_context"] = facts["context_window"]
    Submission.objects.filter(pk=sub.pk).update(probe_result=facts)
    window = loaded.context_window
    if window and window < sub.version.max_length:
        raise SubmissionNotRunnable(
            f"{loaded.name} has a {window:,}-token window, shorter than this version's longest length "
            f"({sub.version.max_length:,} tokens); choose a version whose lengths fit, such as 'smoke'.")


def backend(sub: Any, method: str, budget: float) -> LocalBackend:
    config = _config(sub)
    try:
        return LocalBackend(load(config), method, budget, files_dir=config.files_dir,
                            query_aware=config.query_aware, memory_limit_bytes=config.memory_limit_bytes)
    except ModelLoadError as exc:
        raise SubmissionNotRunnable(str(exc)) from None


def oom_message(length: int, outcome: SampleOutcome) -> str:
    reached = outcome.metadata.get("reached_bytes")
    figure = f"; it reached {reached / 2**20:,.1f} MiB" if reached else ""
    return f"out of memory at {length:,} tokens (sample {outcome.index}{figure})"


def cell_efficiency(outcomes: list[SampleOutcome]) -> dict[str, Any]:
    """Cell figures from the samples' measured efficiency: means, and the peak memory's maximum."""
    measured = [o.metadata["efficiency"] for o in outcomes if o.metadata.get("efficiency")]
    if not measured:
        return {}

    def mean(key: str) -> float | None:
        values = [m[key] for m in measured if m.get(key) is not None]
        return fmean(values) if values else None

    kv_bytes, full = mean("kv_bytes"), mean("kv_bytes_full")
    return {
        "kv_bytes": round(kv_bytes) if kv_bytes is not None else None,
        "kv_bytes_full": round(full) if full is not None else None,
        "kept_fraction": mean("kept_fraction"),
        "physical": all(m.get("physical", True) for m in measured),
        "query_aware": any(m.get("query_aware") for m in measured),
        "peak_memory_bytes": max(int(m.get("peak_mem_bytes") or 0) for m in measured),
        "prefill_s": mean("prefill_s"),
        "ttft_s": mean("ttft_s"),
        "decode_tokens_per_s": mean("decode_tps"),
    }
