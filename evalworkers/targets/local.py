"""A local Hugging Face model on a `gpu` worker: loaded before its cells exist, run under each KV method."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings

from evalworkers import prompt_sizing
from evalworkers.backends.local import LocalBackend, LocalModelConfig, ModelLoadError, load
from evalworkers.benchmark import HFTokenCounter
from evalworkers.kv import registry
from evalworkers.targets.base import FULL_CACHE, CellRun, GridPoint, Preflight, SubmissionNotRunnable, Target


def query_aware(version: Any) -> bool:
    """Whether the version compresses context and question together (``params.query_aware``)."""
    return bool((version.params or {}).get("query_aware", False))


def config_for(source: str, revision: str | None = None, *, aware: bool = False) -> LocalModelConfig:
    """A local model under this deployment's EVAL_LOCAL_* and KV_FILES_DIR settings."""
    return LocalModelConfig(
        source=source, revision=revision or None, models_dir=settings.EVAL_MODELS_DIR,
        device=settings.EVAL_LOCAL_DEVICE, dtype=settings.EVAL_LOCAL_DTYPE, offline=settings.EVAL_LOCAL_OFFLINE,
        files_dir=settings.KV_FILES_DIR, memory_limit_bytes=settings.EVAL_LOCAL_MEMORY_LIMIT_BYTES or None,
        query_aware=aware,
    )


def oom_message(length: int, index: int, reached_bytes: int | None) -> str:
    """Why a cell ended out of memory: the length, the sample, and how far memory got (MiB)."""
    figure = f"; it reached {reached_bytes / 2**20:,.1f} MiB" if reached_bytes else ""
    return f"out of memory at {length:,} tokens (sample {index}{figure})"


class LocalTarget(Target):
    """``config``: how to load the model; ``methods``: the compressing KV methods requested (never "full": the
    full cache always runs as the baseline), each at each of ``budgets`` (fractions of the full cache) the version
    offers; ``restrict_to_version`` False runs any method at any budget (``registry.grid``)."""

    kind = "huggingface"

    def __init__(self, version: Any, config: LocalModelConfig, *, methods: Sequence[str] = (),
                 budgets: Sequence[float] = (), lengths: Sequence[int] | None = None,
                 restrict_to_version: bool = True) -> None:
        super().__init__(version, lengths=lengths)
        self.config = config
        self.methods = [m for m in methods if m != FULL_CACHE.method]
        self.budgets = [float(b) for b in budgets]
        self.restrict_to_version = restrict_to_version

    @classmethod
    def for_submission(cls, sub: Any) -> LocalTarget:
        config = config_for(sub.model.hf_repo, sub.model.hf_revision, aware=query_aware(sub.version))
        return cls(sub.version, config, methods=sub.kv_methods, budgets=sub.kv_budgets)

    def points(self) -> list[GridPoint]:
        """The full cache, then each requested method at each requested budget the version offers it at
        (``registry.grid``); SubmissionNotRunnable names a method or budget the version does not offer or the
        registry refuses."""
        try:
            if not self.restrict_to_version:
                return registry.grid(self.methods, self.budgets)
            return registry.grid(self.methods, self.budgets, offered=self.version.kv_offered(),
                                 refused=self.version.kv_refused())
        except registry.MethodError as exc:
            raise SubmissionNotRunnable(str(exc)) from None

    def preflight(self) -> Preflight:
        """Methods and budgets valid and runnable here (files present, budgets honoured at the shortest length),
        the model loads, and its window holds the longest length."""
        problem = registry.unrunnable(self.points(), files_dir=self.config.files_dir, model_name=self.config.source,
                                      context_tokens=min(self.lengths))
        if problem is not None:
            raise SubmissionNotRunnable(problem[1])
        try:
            loaded = load(self.config)
        except ModelLoadError as exc:
            raise SubmissionNotRunnable(str(exc), Preflight(facts={
                "ok": False, "kind": "local", "code": "model_load", "message": str(exc)})) from None
        facts = {"ok": True, "kind": "local", "query_aware": self.config.query_aware, **loaded.describe()}
        facts["message"] = (f"loaded {facts['model']} ({facts['architecture']}, {facts['layers']} layers, "
                            f"{loaded.placement}"
                            + (f", {facts['context_window']:,}-token window" if facts["context_window"] else "")
                            + f") in {facts['load_s']:.1f}s")
        facts["server_context"] = facts["context_window"]
        window, longest = loaded.context_window, max(self.lengths)
        if window and window < longest:
            raise SubmissionNotRunnable(
                f"{loaded.name} has a {window:,}-token window, shorter than the longest length here "
                f"({longest:,} tokens); choose a version (or lengths) that fit, such as 'smoke'.", Preflight(facts))
        return Preflight(facts)

    def cell_run(self, point: GridPoint) -> CellRun:
        """One sample at a time (the model and its timings are not shared), sized by the model's own tokenizer."""
        try:
            backend = LocalBackend(load(self.config), point.method, point.budget, files_dir=self.config.files_dir,
                                   query_aware=self.config.query_aware,
                                   memory_limit_bytes=self.config.memory_limit_bytes)
        except ModelLoadError as exc:
            raise SubmissionNotRunnable(str(exc)) from None
        sizing = prompt_sizing.Sizing(prompt_sizing.SizingMethod.MODEL_TOKENIZER,
                                      HFTokenCounter(backend.loaded.tokenizer), measure=backend.count_prompt)
        return CellRun(backend=backend, sizing=sizing, concurrency=1)
