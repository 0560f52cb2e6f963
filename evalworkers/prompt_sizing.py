"""How a cell's prompts are sized in the reading model's own tokens, and how that is checked. No Django.

A length column means "prompts of this many tokens as the model counts them, generation included". The best
counter available decides how exact that is (``SizingMethod``): the local model's tokenizer, the endpoint's
tokenize route, a tokenizer named by the submitter that is available here, or, failing those, characters per
token measured on the cell's own prompts (one calibration request per cell, then corrected from every
response's ``usage.prompt_tokens``). Tokens the server adds around the text (chat template, BOS) are reserved.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from evalworkers.backends import GenerationRequest
from evalworkers.benchmark import CalibratedCounter, HFTokenCounter, Sample, SpecError, TokenCounter
from evalworkers.benchmark.tokens import ExactCounter

log = logging.getLogger(__name__)

#: A prompt may end this far below its target (relative) before its cell is flagged; above it, never.
LENGTH_TOLERANCE = 0.02
#: ...or this many tokens at short lengths, where the generator's smallest step (16 tokens: a numbered
#: document's header plus a word, ``benchmark.length_tolerance``) plus an estimate's margin (under 1%) is more
#: than 2%.
SHORT_TOLERANCE_TOKENS = 24
CALIBRATION_MARGIN = 0.05  # calibration prompts are sized this much short, so that none overflows the window


class SizingMethod(StrEnum):
    MODEL_TOKENIZER = "model_tokenizer"
    SERVER_TOKENIZER = "server_tokenizer"
    LOCAL_TOKENIZER = "local_tokenizer"
    CALIBRATED = "calibrated"
    UNVERIFIED = "unverified"

    @property
    def label(self) -> str:
        return SIZING_LABELS[self]


SIZING_LABELS = {
    SizingMethod.MODEL_TOKENIZER: "exact: the model's own tokenizer",
    SizingMethod.SERVER_TOKENIZER: "exact: the server's tokenize route",
    SizingMethod.LOCAL_TOKENIZER: "exact: the tokenizer named by the submitter",
    SizingMethod.CALIBRATED: "estimated per cell from the server's token counts, corrected from every response",
    SizingMethod.UNVERIFIED: "estimated; unverified (the server reports no token usage)",
}


def prompt_token_mismatch(measured: float, target: float, tolerance: float = LENGTH_TOLERANCE) -> bool:
    """True when a prompt measured ``measured`` tokens by the model's server is over its ``target`` (the
    length minus the new tokens) or more than ``tolerance`` (relative; at least ``SHORT_TOLERANCE_TOKENS``)
    below it."""
    if target <= 0:
        raise ValueError("target must be positive")
    return measured > target or measured < target - max(target * tolerance, SHORT_TOLERANCE_TOKENS)


@dataclass(frozen=True)
class Sizing:
    """The counter that sizes a cell's prompts and what it takes to keep it right.

    ``reserve_tokens``: tokens the server adds around the text; ``calibrated``: the estimate to calibrate on the
    cell's first prompt and correct from each response (None: the counter is exact); ``measure``: the exact
    count of a whole request as the model sees it, without generating (local models), used to set the reserve.
    """

    method: SizingMethod
    counter: TokenCounter
    reserve_tokens: int = 0
    calibrated: CalibratedCounter | None = None
    measure: Callable[[GenerationRequest], int] | None = None

    def observe(self, sample: Sample, prompt_tokens: int | None) -> None:
        """Correct the estimate from a response's usage (nothing to do for exact counters)."""
        if self.calibrated is not None and prompt_tokens:
            self.calibrated.update(len(sample.as_completion_prompt()), prompt_tokens - self.reserve_tokens)


def local_tokenizer(hint: str) -> TokenCounter | None:
    """The tokenizer a submitter named, when it is available on this machine without a download."""
    if not hint.strip():
        return None
    try:
        from transformers import AutoTokenizer

        return HFTokenCounter(AutoTokenizer.from_pretrained(hint.strip(), local_files_only=True))
    except Exception as exc:  # not cached here, not a tokenizer, or a malformed name: estimate instead
        log.info("tokenizer hint %r is not available here (%s); sizing by calibration", hint, type(exc).__name__)
        return None


def for_endpoint(dialect: Any, *, chars_per_token: float, remote_count: Callable[[str], int] | None,
                 tokenizer_hint: str = "") -> Sizing:
    """The sizing of an endpoint's cells from what its probe learned (``dialect.Dialect``)."""
    estimate = CalibratedCounter(chars_per_token)
    reserve = dialect.template_overhead_tokens or 0
    if remote_count is not None:
        return Sizing(SizingMethod.SERVER_TOKENIZER, ExactCounter(remote_count, estimate), reserve)
    hinted = local_tokenizer(tokenizer_hint)
    if hinted is not None:
        return Sizing(SizingMethod.LOCAL_TOKENIZER, hinted, reserve)
    if dialect.reports_usage is False:
        return Sizing(SizingMethod.UNVERIFIED, estimate, reserve)
    return Sizing(SizingMethod.CALIBRATED, estimate, reserve, calibrated=estimate)


def calibrate(spec: Any, backend: Any, sizing: Sizing, index: int) -> tuple[Any, Sizing]:
    """The cell's spec with its reserve set, and the sizing calibrated on the cell's own prompt ``index``.

    Local models: the reserve is the exact template overhead of that prompt (no generation). Endpoints with an
    exact counter: that prompt is sent once with one new token and the reserve set from the server's count (a
    chat template's tokens depend on the messages: an answer prefill adds a turn). Calibrated
    endpoints: the prompt is sent with one new token, at a quarter of the length and then at the full length,
    and the cell's characters per token set from the server's counts, so number-, UUID- and code-heavy
    haystacks are sized as what they are, not as prose.
    """
    spec = dataclasses.replace(spec, options=dataclasses.replace(spec.options, reserve_tokens=sizing.reserve_tokens))
    if sizing.measure is not None:
        sample = spec.sample(index, sizing.counter)
        return _with_reserve(spec, sizing, max(0, sizing.measure(spec.request(sample)) - sample.prompt_tokens))
    if sizing.method is SizingMethod.UNVERIFIED:
        return spec, sizing
    if sizing.calibrated is None:
        return _reserve_from_server(spec, backend, sizing, index)
    return _calibrate_estimate(spec, backend, sizing, index)


def _reserve_from_server(spec: Any, backend: Any, sizing: Sizing, index: int) -> tuple[Any, Sizing]:
    """An exact counter leaves only the server's own additions to measure: one request of the cell's prompt."""
    sample = spec.sample(index, sizing.counter)
    result = backend.generate(dataclasses.replace(spec.request(sample), max_new_tokens=1))
    if not result.ok or not result.prompt_tokens:
        return spec, sizing
    return _with_reserve(spec, sizing, max(0, result.prompt_tokens - sample.prompt_tokens))


def _calibrate_estimate(spec: Any, backend: Any, sizing: Sizing, index: int) -> tuple[Any, Sizing]:
    estimate = sizing.calibrated
    assert estimate is not None
    # The server's own tokens for this cell's request shape (template, turns, the answer prefill): the same
    # messages with an empty user text.
    sample = spec.sample(index, estimate)
    empty = backend.generate(dataclasses.replace(_emptied(spec.request(sample)), max_new_tokens=1))
    if empty.ok and empty.prompt_tokens:
        prefix = estimate.count(f" {sample.answer_prefix}") if sample.answer_prefix else 0
        spec, sizing = _with_reserve(spec, sizing, max(0, empty.prompt_tokens - prefix))
    # Then a quarter-length prompt of the same kind, so that an estimate far off (digits as tokens: 2x) cannot
    # overflow the window, and a full-length one sized CALIBRATION_MARGIN short, which cannot either and whose
    # ratio is a full prompt's.
    shorter = _shorter(spec, 4)
    for round_spec in (shorter, spec) if shorter is not spec else (spec,):
        sample = round_spec.sample(index, CalibratedCounter(estimate.chars_per_token, margin=CALIBRATION_MARGIN))
        result = backend.generate(dataclasses.replace(round_spec.request(sample), max_new_tokens=1))
        if not result.ok or not result.prompt_tokens:
            log.info("calibration request failed (%s); sizing with the current estimate", result.error)
            break
        estimate.calibrate(len(sample.as_completion_prompt()), result.prompt_tokens - sizing.reserve_tokens)
    return spec, sizing


def _emptied(request: GenerationRequest) -> GenerationRequest:
    """The request with its prompt text emptied and its form kept (system prompt, turns, assistant prefill)."""
    if request.messages is None:
        return dataclasses.replace(request, prompt="", compress_until=None)
    messages = [dict(m, content="") if m.get("role") == "user" else m for m in request.messages]
    return dataclasses.replace(request, messages=messages, compress_until=None)


def _with_reserve(spec: Any, sizing: Sizing, reserve: int) -> tuple[Any, Sizing]:
    return (dataclasses.replace(spec, options=dataclasses.replace(spec.options, reserve_tokens=reserve)),
            dataclasses.replace(sizing, reserve_tokens=reserve))


def _shorter(spec: Any, divisor: int) -> Any:
    """The spec at a fraction of its length, when the task can be built that short; else the spec itself."""
    shorter = dataclasses.replace(spec, length=spec.length // divisor)
    try:
        shorter.sample(0, CalibratedCounter(4.0))
    except SpecError:
        return spec
    return shorter
