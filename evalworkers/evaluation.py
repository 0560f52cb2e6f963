"""Evaluating one cell's samples against a backend: build, generate, score. No Django.

The runner (evalworkers/runner.py) persists what this returns; `manage.py evaluate` prints it.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from evalworkers.backends import Backend, CircuitBreaker, GenerationRequest, GenerationResult, generate_many
from evalworkers.backends.probe import prompt_token_mismatch
from evalworkers.benchmark import RenderOptions, Sample, TokenCounter, generate_sample, score
from evalworkers.stats import bootstrap_seed, mean_ci


@dataclass(frozen=True)
class CellSpec:
    """Everything that decides a cell's samples (with the counter that sizes them)."""

    seed: int
    task_key: str
    task_type: str
    params: dict[str, Any]
    length: int
    max_new_tokens: int
    samples: int
    api_mode: str = "chat"
    options: RenderOptions = field(default_factory=RenderOptions)

    def sample(self, index: int, counter: TokenCounter) -> Sample:
        return generate_sample(seed=self.seed, task_key=self.task_key, task_type=self.task_type,
                               params=self.params, length=self.length, index=index, counter=counter,
                               max_new_tokens=self.max_new_tokens, options=self.options)

    def request(self, sample: Sample) -> GenerationRequest:
        context_end = len(sample.instruction) + len(sample.separators[0]) + len(sample.context)
        if self.api_mode == "completions":
            head = len(f"{sample.system_prompt}\n\n") if sample.system_prompt else 0
            return GenerationRequest(prompt=sample.as_completion_prompt(), max_new_tokens=sample.max_new_tokens,
                                     compress_until=head + context_end)
        return GenerationRequest(messages=sample.as_messages(), max_new_tokens=sample.max_new_tokens,
                                 compress_until=context_end)


@dataclass(frozen=True)
class SampleOutcome:
    index: int
    prediction: str
    expected: list[str]
    score: float | None  # None when the sample errored: an error is not a wrong answer
    error: str
    target_prompt_tokens: int
    prompt_tokens: int | None
    output_tokens: int | None
    latency_s: float
    ttft_s: float | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CellSummary:
    n: int
    errors: int
    score: float | None
    ci_low: float | None
    ci_high: float | None
    prompt_tokens_mean: float | None
    target_prompt_tokens_mean: float | None
    prompt_token_mismatch: bool
    ttft_s: float | None
    decode_tokens_per_s: float | None
    top_error: str


EXCERPT_BEFORE, EXCERPT_AFTER = 200, 300


def excerpt(sample: Sample) -> str:
    """The context around the first planted piece (needle, chain, gold document), for the sample browser:
    enough to see why an answer failed without storing the whole prompt."""
    inserts = sample.metadata.get("inserts") or []
    offsets = [i["char_offset"] for i in inserts if isinstance(i, dict) and isinstance(i.get("char_offset"), int)]
    if not offsets:
        return sample.context[:EXCERPT_BEFORE + EXCERPT_AFTER]
    at = min(offsets)
    return sample.context[max(0, at - EXCERPT_BEFORE):at + EXCERPT_AFTER]


def outcome_of(index: int, sample: Sample, result: GenerationResult) -> SampleOutcome:
    failed = result.error is not None
    return SampleOutcome(
        index=index, prediction=result.text, expected=list(sample.answers),
        score=None if failed else score(result.text, sample.answers, sample.metric),
        error=(result.error or "")[:1000], target_prompt_tokens=sample.prompt_tokens,
        prompt_tokens=result.prompt_tokens, output_tokens=result.completion_tokens, latency_s=result.latency_s,
        ttft_s=result.ttft_s,
        metadata={**{k: v for k, v in sample.metadata.items() if k != "params"}, "excerpt": excerpt(sample),
                  **_measured(result)},
    )


def _measured(result: GenerationResult) -> dict[str, Any]:
    """What a local backend measured (efficiency, out of memory), kept with the sample."""
    extra = result.extra or {}
    found: dict[str, Any] = {}
    if extra.get("efficiency"):
        found["efficiency"] = extra["efficiency"]
    if extra.get("oom"):
        found["oom"] = True
        found["reached_bytes"] = extra.get("reached_bytes")
    return found


def evaluate_samples(spec: CellSpec, backend: Backend, counter: TokenCounter, indices: Iterable[int], *,
                     concurrency: int = 8, breaker: CircuitBreaker | None = None,
                     stop: threading.Event | None = None,
                     on_outcome: Callable[[SampleOutcome], None] | None = None) -> list[SampleOutcome]:
    """Generate and score the given sample indices; samples skipped by `stop` or an open breaker are dropped."""
    indices = list(indices)
    if indices:
        spec.sample(indices[0], counter)  # a spec that cannot build samples fails here, before any request
    samples: dict[int, Sample] = {}
    outcomes: list[SampleOutcome] = []

    def build(position: int) -> GenerationRequest:
        # Runs on a request thread, so that building samples overlaps the network time of the others.
        samples[position] = sample = spec.sample(indices[position], counter)
        return spec.request(sample)

    def collect(position: int, result: GenerationResult) -> None:
        if result.attempts == 0 and result.error is not None:
            return  # never sent (cancelled, or the breaker was already open): not a result
        outcome = outcome_of(indices[position], samples[position], result)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    builders = [functools.partial(build, position) for position in range(len(indices))]
    generate_many(backend, builders, concurrency=concurrency, breaker=breaker, on_result=collect, stop=stop)
    return sorted(outcomes, key=lambda o: o.index)


def summarize(outcomes: list[SampleOutcome], *, seed_parts: tuple[object, ...] = ()) -> CellSummary:
    scored = [o.score for o in outcomes if o.score is not None]
    errors = [o.error for o in outcomes if o.score is None]
    measured = [(o.prompt_tokens, o.target_prompt_tokens) for o in outcomes if o.prompt_tokens]
    mean = low = high = None
    if scored:
        mean, low, high = mean_ci(scored, seed=bootstrap_seed(*seed_parts))
    prompt_mean = sum(m for m, _ in measured) / len(measured) if measured else None
    target_mean = sum(t for _, t in measured) / len(measured) if measured else None
    ttfts = [o.ttft_s for o in outcomes if o.ttft_s is not None]
    rates = [o.output_tokens / (o.latency_s - (o.ttft_s or 0.0)) for o in outcomes
             if o.output_tokens and o.ttft_s is not None and o.latency_s > (o.ttft_s or 0.0)]
    return CellSummary(
        n=len(scored), errors=len(errors), score=mean, ci_low=low, ci_high=high,
        prompt_tokens_mean=prompt_mean, target_prompt_tokens_mean=target_mean,
        prompt_token_mismatch=bool(measured) and prompt_token_mismatch(round(prompt_mean), round(target_mean)),
        ttft_s=sum(ttfts) / len(ttfts) if ttfts else None,
        decode_tokens_per_s=sum(rates) / len(rates) if rates else None,
        top_error=Counter(errors).most_common(1)[0][0] if errors else "",
    )
