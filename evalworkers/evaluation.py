"""Evaluating one cell's samples against a backend: build, generate, score. No Django.

The runner (evalworkers/runner.py) persists what this returns; `manage.py evaluate` prints it.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalworkers.backends import Backend, CircuitBreaker, GenerationRequest, GenerationResult, generate_many
from evalworkers.backends.conversation import Conversation, converse
from evalworkers.benchmark import (
    AnswerOutcome,
    RenderOptions,
    Sample,
    TokenCounter,
    extract_answer,
    generate_sample,
    turns_of,
)
from evalworkers.benchmark.scoring import score_detail
from evalworkers.efficiency import Efficiency
from evalworkers.prompt_sizing import prompt_token_mismatch
from evalworkers.stats import cell_interval


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

    @property
    def turns(self) -> int:
        """Questions per context: 1, or more in the shared-context mode (the task's ``turns`` parameter)."""
        return turns_of(self.params)

    def request(self, sample: Sample) -> GenerationRequest:
        context_end = len(sample.instruction) + len(sample.separators[0]) + len(sample.context)
        if self.api_mode == "completions":
            head = len(f"{sample.system_prompt}\n\n") if sample.system_prompt else 0
            return GenerationRequest(prompt=sample.as_completion_prompt(), max_new_tokens=sample.max_new_tokens,
                                     compress_until=head + context_end)
        return GenerationRequest(messages=sample.as_messages(), max_new_tokens=sample.max_new_tokens,
                                 compress_until=context_end)

    def conversation(self, sample: Sample, needed: set[int]) -> Conversation:
        """The sample's turns as one conversation (``Sample.conversation_messages``/``conversation_prompt``), the
        context marked compressible in the first; ``needed``: the turns (1-based) still to answer."""
        first = self.request(sample.at_turn(1))
        later = [GenerationRequest(prompt=sample.conversation_prompt(turn), max_new_tokens=sample.max_new_tokens)
                 if self.api_mode == "completions" else
                 GenerationRequest(messages=sample.conversation_messages(turn), max_new_tokens=sample.max_new_tokens)
                 for turn in range(2, sample.turns + 1)]
        return Conversation(turns=(first, *later), needed=frozenset(needed))


REASONING_EXCERPT_CHARS = 400


@dataclass(frozen=True)
class SampleOutcome:
    """One scored (or errored) sample. ``prediction`` is the final answer only (reasoning removed);
    ``answer_outcome`` says whether there was one (a reply without one scores 0 and is counted apart);
    ``answer_found_by`` how it was found (``answers.ExtractedAnswer.found_by``); ``reasoning_chars`` the length
    of the reasoning in characters and ``reasoning_tokens`` as the server reported them (None: not reported).
    ``ttft_s`` (seconds) and ``decode_tokens_per_s`` are the backend's own measurement (None: not measured);
    a local model adds its KV figures (``efficiency``), or ``out_of_memory`` with the memory ``reached_bytes``."""

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
    finish_reason: str = ""
    answer_outcome: str = AnswerOutcome.ANSWERED
    answer_found_by: str = "plain"
    reasoning_chars: int = 0
    reasoning_tokens: int | None = None
    decode_tokens_per_s: float | None = None
    efficiency: Efficiency | None = None
    out_of_memory: bool = False
    reached_bytes: int | None = None
    turn: int = 1  # which question about the sample's context (shared-context mode; 1 otherwise)


@dataclass(frozen=True)
class StoredSample:
    """A stored sample's figures, as ``summarize`` reads them (the same fields as ``SampleOutcome``'s), read back
    without its prompt, prediction or answers."""

    score: float | None
    error: str
    target_prompt_tokens: int
    prompt_tokens: int | None
    ttft_s: float | None
    decode_tokens_per_s: float | None
    finish_reason: str
    answer_outcome: str
    reasoning_chars: int
    efficiency: Efficiency | None
    output_tokens: int | None = None
    turn: int = 1


@dataclass(frozen=True)
class CellSummary:
    n: int
    errors: int
    score: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str  # evalworkers.stats.IntervalMethod; "" without scored samples
    prompt_tokens_mean: float | None
    target_prompt_tokens_mean: float | None
    prompt_token_mismatch: bool
    ttft_s: float | None
    decode_tokens_per_s: float | None
    top_error: str
    finish_stop: int = 0
    finish_length: int = 0
    finish_other: int = 0
    no_final_answer: int = 0
    reasoning_chars_mean: float | None = None
    efficiency: Efficiency | None = None  # a local model's KV figures (``Efficiency.of_cell``); None elsewhere
    output_tokens_mean: float | None = None  # reply tokens as the backend counted them, over scored samples
    by_turn: TurnSummary | None = None  # the shared-context mode's figures by turn; None for one question

    @property
    def finish_reasons(self) -> dict[str, int]:
        return {"stop": self.finish_stop, "length": self.finish_length, "other": self.finish_other}


@dataclass(frozen=True)
class TurnSummary:
    """A shared-context cell's figures by turn: mean score (0-100) on the first question and on the later ones,
    and the mean time to first token (seconds, as the backend measured it) of turns 1 and 2, whose ratio shows
    whether a server reused the cached conversation. None where nothing was scored or measured."""

    first_turn_score: float | None
    later_turns_score: float | None
    first_turn_ttft_s: float | None
    second_turn_ttft_s: float | None

    @classmethod
    def of(cls, outcomes: Sequence[SampleOutcome | StoredSample]) -> TurnSummary | None:
        """None when every outcome is a first turn (one question per context)."""
        if all(o.turn == 1 for o in outcomes):
            return None

        def mean(values: list[float]) -> float | None:
            return sum(values) / len(values) if values else None

        return cls(
            first_turn_score=mean([o.score for o in outcomes if o.turn == 1 and o.score is not None]),
            later_turns_score=mean([o.score for o in outcomes if o.turn > 1 and o.score is not None]),
            first_turn_ttft_s=mean([o.ttft_s for o in outcomes if o.turn == 1 and o.ttft_s is not None]),
            second_turn_ttft_s=mean([o.ttft_s for o in outcomes if o.turn == 2 and o.ttft_s is not None]),
        )


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


def outcome_of(index: int, sample: Sample, result: GenerationResult, turn: int = 1) -> SampleOutcome:
    """Extract the final answer (``answers.extract_answer``), then score only that; ``sample`` as ``turn`` asks it
    (``Sample.at_turn``). A long-output metric's figures (per-question scores and where each answer sits, row
    precision and recall, word counts) are kept in the metadata under ``scoring``."""
    failed = result.error is not None
    found = extract_answer(None if result.content_null else result.text, reasoning_field=result.reasoning,
                           reasoning_field_name=result.reasoning_field, finish_reason=result.finish_reason,
                           hidden_reasoning_tokens=result.reasoning_tokens)
    metadata = {**{k: v for k, v in sample.metadata.items() if k != "params"}, "excerpt": excerpt(sample)}
    if found.reasoning and not failed:
        # The end of the reasoning shows where a model stopped; the whole of it is not kept.
        metadata["reasoning_tail"] = found.reasoning[-REASONING_EXCERPT_CHARS:]
    scored = None
    if not failed and found.outcome.has_answer:
        scored = score_detail(found.answer, sample.answers, sample.metric, sample.metadata)
        if scored.detail:
            metadata["scoring"] = scored.detail
    return SampleOutcome(
        index=index, prediction="" if failed else found.answer, expected=list(sample.answers),
        score=None if failed else scored.score if scored is not None else 0.0,
        error=(result.error or "")[:1000], target_prompt_tokens=sample.length - sample.max_new_tokens,
        prompt_tokens=result.prompt_tokens, output_tokens=result.completion_tokens, latency_s=result.latency_s,
        ttft_s=result.ttft_s, metadata=metadata, finish_reason=(result.finish_reason or "")[:32],
        answer_outcome=found.outcome.value, answer_found_by=found.found_by[:64],
        reasoning_chars=found.reasoning_chars, reasoning_tokens=result.reasoning_tokens,
        decode_tokens_per_s=result.decode_tokens_per_s, efficiency=result.efficiency,
        out_of_memory=result.out_of_memory, reached_bytes=result.reached_bytes, turn=turn,
    )


def evaluate_samples(spec: CellSpec, backend: Backend, counter: TokenCounter, indices: Iterable[int], *,
                     concurrency: int = 8, breaker: CircuitBreaker | None = None,
                     stop: threading.Event | None = None,
                     on_outcome: Callable[[SampleOutcome], None] | None = None,
                     observe: Callable[[Sample, int | None], None] | None = None) -> list[SampleOutcome]:
    """Generate and score the given sample indices; samples skipped by `stop` or an open breaker are dropped.

    ``observe`` receives each sample with the prompt tokens its server reported (``prompt_sizing.Sizing``
    corrects its estimate from them, so later samples are sized better)."""
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
        if observe is not None:
            observe(samples[position], result.prompt_tokens)
        outcome = outcome_of(indices[position], samples[position], result)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    builders = [functools.partial(build, position) for position in range(len(indices))]
    generate_many(backend, builders, concurrency=concurrency, breaker=breaker, on_result=collect, stop=stop)
    return sorted(outcomes, key=lambda o: o.index)


def evaluate_conversations(spec: CellSpec, backend: Backend, counter: TokenCounter, todo: dict[int, set[int]], *,
                           breaker: CircuitBreaker | None = None, stop: threading.Event | None = None,
                           on_outcome: Callable[[SampleOutcome], None] | None = None,
                           observe: Callable[[Sample, int | None], None] | None = None) -> list[SampleOutcome]:
    """The shared-context mode: for each sample index in ``todo`` (in order), its context asked its turns as one
    conversation (``Conversation``), answering only the turns (1-based) listed for it; one outcome per answered
    turn, each to ``on_outcome`` as it comes. Conversations run one after another, so that a server's time to first
    token per turn is its own and not another conversation's. ``observe`` sees the first turn's prompt tokens."""
    outcomes: list[SampleOutcome] = []
    for index in sorted(todo):
        if (stop is not None and stop.is_set()) or (breaker is not None and breaker.is_open):
            break
        sample = spec.sample(index, counter)

        def on_turn(turn: int, result: GenerationResult, sample: Sample = sample, index: int = index) -> None:
            if turn == 1 and observe is not None:
                observe(sample, result.prompt_tokens)
            outcome = outcome_of(index, sample.at_turn(turn), result, turn)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        converse(backend, spec.conversation(sample, todo[index]), on_turn, breaker=breaker, stop=stop)
    return sorted(outcomes, key=lambda o: (o.index, o.turn))


def evaluate_cell(spec: CellSpec, backend: Backend, counter: TokenCounter, stored: set[tuple[int, int]], *,
                  concurrency: int = 8, breaker: CircuitBreaker | None = None, stop: threading.Event | None = None,
                  on_outcome: Callable[[SampleOutcome], None] | None = None,
                  observe: Callable[[Sample, int | None], None] | None = None) -> list[SampleOutcome]:
    """A cell's samples not yet ``stored`` ((index, turn) pairs): one question per sample (``evaluate_samples``),
    or in the shared-context mode each sample's missing turns (``evaluate_conversations``)."""
    todo = {index: {turn for turn in range(1, spec.turns + 1) if (index, turn) not in stored}
            for index in range(spec.samples)}
    todo = {index: turns for index, turns in todo.items() if turns}
    if spec.turns == 1:
        return evaluate_samples(spec, backend, counter, sorted(todo), concurrency=concurrency, breaker=breaker,
                                stop=stop, on_outcome=on_outcome, observe=observe)
    if todo:
        spec.sample(min(todo), counter)  # a spec that cannot build samples fails here, before any request
    return evaluate_conversations(spec, backend, counter, todo, breaker=breaker, stop=stop, on_outcome=on_outcome,
                                  observe=observe)


def first_missing(spec: CellSpec, stored: set[tuple[int, int]]) -> int | None:
    """The first sample index with a turn not yet stored (None: the cell is complete)."""
    return next((index for index in range(spec.samples)
                 if any((index, turn) not in stored for turn in range(1, spec.turns + 1))), None)


def finish_kind(finish_reason: str | None) -> str:
    """``stop`` (an end-of-sequence token or a stop string), ``length`` (the token limit), or ``other``
    (content filters, tool calls, or a server that sends none)."""
    return finish_reason if finish_reason in ("stop", "length") else "other"


def summarize(outcomes: Sequence[SampleOutcome | StoredSample]) -> CellSummary:
    """A cell's figures from its samples; the score's 95% interval is ``stats.cell_interval`` (Wilson for 0/1
    scores, Price-Bonett for graded ones). Time to first token and decode speed are the means of what the backend
    measured per sample; the KV figures are ``Efficiency.of_cell``; output tokens are the mean over scored samples
    of what the backend counted."""
    scored = [o.score for o in outcomes if o.score is not None]
    answered = [o for o in outcomes if o.score is not None]
    finishes = Counter(finish_kind(o.finish_reason) for o in answered)
    reasoned = [o.reasoning_chars for o in answered if o.reasoning_chars]
    errors = [o.error for o in outcomes if o.score is None]
    measured = [(o.prompt_tokens, o.target_prompt_tokens) for o in outcomes if o.prompt_tokens]
    mean = low = high = None
    method = ""
    if scored:
        interval = cell_interval(scored)
        mean, low, high, method = interval.mean, interval.low, interval.high, interval.method.value
    prompt_mean = sum(m for m, _ in measured) / len(measured) if measured else None
    target_mean = sum(t for _, t in measured) / len(measured) if measured else None
    ttfts = [o.ttft_s for o in outcomes if o.ttft_s is not None]
    rates = [o.decode_tokens_per_s for o in outcomes if o.decode_tokens_per_s is not None]
    written = [o.output_tokens for o in answered if o.output_tokens is not None]
    return CellSummary(
        n=len(scored), errors=len(errors), score=mean, ci_low=low, ci_high=high, ci_method=method,
        prompt_tokens_mean=prompt_mean, target_prompt_tokens_mean=target_mean,
        prompt_token_mismatch=bool(measured) and prompt_token_mismatch(round(prompt_mean), round(target_mean)),
        ttft_s=sum(ttfts) / len(ttfts) if ttfts else None,
        decode_tokens_per_s=sum(rates) / len(rates) if rates else None,
        top_error=Counter(errors).most_common(1)[0][0] if errors else "",
        finish_stop=finishes["stop"], finish_length=finishes["length"], finish_other=finishes["other"],
        no_final_answer=sum(o.answer_outcome != AnswerOutcome.ANSWERED for o in answered),
        reasoning_chars_mean=sum(reasoned) / len(answered) if reasoned else None,
        efficiency=Efficiency.of_cell([o.efficiency for o in outcomes if o.efficiency is not None]),
        output_tokens_mean=sum(written) / len(written) if written else None,
        by_turn=TurnSummary.of(outcomes),
    )
