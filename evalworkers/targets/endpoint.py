"""An OpenAI-compatible endpoint: probed before its cells exist, measured as served (the full cache only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from evalworkers import prompt_sizing
from evalworkers.backends import EndpointBackend, EndpointConfig, probe
from evalworkers.backends.dialect import Dialect
from evalworkers.backends.tokenize import RemoteTokenizer
from evalworkers.targets.base import CellRun, GridPoint, Preflight, SubmissionNotRunnable, Target

DEFAULT_CHARS_PER_TOKEN = 4.0


def engine_config(*, base_url: str, model: str, api_mode: str, api_key: str | None) -> EndpointConfig:
    """An endpoint under this deployment's EVAL_* settings (timeouts, retries, concurrency, address rules)."""
    return EndpointConfig(
        base_url=base_url, model=model, api_mode=api_mode, api_key=api_key, stream=settings.EVAL_STREAM,
        request_timeout_s=settings.EVAL_REQUEST_TIMEOUT_S, deadline_s=settings.EVAL_DEADLINE_S,
        max_retries=settings.EVAL_MAX_RETRIES, backoff_base_s=settings.EVAL_BACKOFF_BASE_S,
        backoff_cap_s=settings.EVAL_BACKOFF_CAP_S, concurrency=settings.EVAL_CONCURRENCY,
        per_host_limit=settings.EVAL_PER_HOST_LIMIT,
        allow_private=settings.ALLOW_PRIVATE_ENDPOINTS, allowed_networks=tuple(settings.ENDPOINT_ALLOWED_NETWORKS),
    )


def reasoning_advice(version: Any) -> str:
    """The end of the probe's sentence telling a reasoning model's submitter where it can be evaluated."""
    from leaderboard.models import BenchmarkVersion

    others = list(BenchmarkVersion.objects.published().filter(params__reasoning=True).exclude(pk=version.pk)
                  .values_list("slug", flat=True))
    if others:
        return ", such as " + " or ".join(f"'{slug}'" for slug in others)
    return " (none is published on this deployment yet)"


def probe_options(version: Any) -> dict[str, Any]:
    """What the probe needs to know of a version: whether it expects reasoning, and its largest answer budget."""
    extra = version.reasoning_extra_tokens
    answer_tokens = max((t.max_new_tokens for t in version.tasks.all()), default=0)
    return {"expects_reasoning": extra is not None, "answer_tokens": answer_tokens + (extra or 0),
            "reasoning_advice": reasoning_advice(version)}


def endpoint_sizing(backend: EndpointBackend, dialect: Dialect, chars_per_token: float | None,
                    tokenizer_hint: str = "") -> prompt_sizing.Sizing:
    """How an endpoint's cells are sized: its tokenize route, a hinted tokenizer, or calibration per cell."""
    remote = RemoteTokenizer(backend, dialect.tokenize).count if dialect.tokenize else None
    return prompt_sizing.for_endpoint(dialect, chars_per_token=chars_per_token or DEFAULT_CHARS_PER_TOKEN,
                                      remote_count=remote, tokenizer_hint=tokenizer_hint)


class EndpointTarget(Target):
    """``config``: the endpoint, in ``dialect`` (learned by the probe; applied to ``config``); ``probe_facts``: a
    stored probe's findings, which carry its characters-per-token calibration; ``tokenizer_hint``: a tokenizer on
    this machine that the endpoint's model uses."""

    kind = "endpoint"

    def __init__(self, version: Any, config: EndpointConfig, *, lengths: Sequence[int] | None = None,
                 dialect: Dialect | None = None, probe_facts: dict[str, Any] | None = None,
                 tokenizer_hint: str = "") -> None:
        super().__init__(version, lengths=lengths)
        self.dialect = dialect or Dialect()
        self.config = dataclasses.replace(config, **self.dialect.config_fields()) if dialect else config
        self.probe_facts = dict(probe_facts or {})
        self.tokenizer_hint = tokenizer_hint

    @classmethod
    def for_submission(cls, sub: Any) -> EndpointTarget:
        """The submission's endpoint in the dialect its probe learned, with the submitter's request options."""
        entry = sub.model
        config = engine_config(base_url=entry.endpoint_url, model=entry.api_model_name, api_mode=entry.api_mode,
                               api_key=sub.get_api_key())
        config = dataclasses.replace(config, extra_body=sub.request_options or None)
        return cls(sub.version, config, dialect=Dialect.from_json(sub.dialect) if sub.dialect else None,
                   probe_facts=sub.probe_result, tokenizer_hint=entry.tokenizer_hint)

    @property
    def api_mode(self) -> str:
        return self.config.api_mode

    def preflight(self) -> Preflight:
        """The probe (reachable, serves the model, answers, holds the longest length plus its answer); the dialect
        it learned is applied to this target's later cells."""
        result = probe(self.config, required_context=max(self.lengths), timeout_s=settings.EVAL_PROBE_TIMEOUT_S,
                       retry_window_s=settings.EVAL_PROBE_RETRY_S, **probe_options(self.version))
        facts = dataclasses.asdict(result)
        facts["served_models"] = list(result.served_models)[:20]
        checked = Preflight(facts=facts, dialect=result.dialect or {})
        if not result.ok:
            raise SubmissionNotRunnable(result.message, checked)
        self.dialect = result.learned()
        self.config = dataclasses.replace(self.config, **self.dialect.config_fields())
        self.probe_facts = facts
        return checked

    def cell_run(self, point: GridPoint) -> CellRun:
        backend = EndpointBackend(self.config)
        sizing = endpoint_sizing(backend, self.dialect, self.probe_facts.get("chars_per_token"), self.tokenizer_hint)
        return CellRun(backend=backend, sizing=sizing, concurrency=self.config.concurrency)
