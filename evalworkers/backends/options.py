"""Request options a submitter may add to every generation request, checked against an allowlist.

They change what a score means (thinking on or off, a reasoning effort, a sampling cut-off), so they are part
of a result's provenance and shown with it. Everything the benchmark itself decides (greedy decoding, the
token limit, the prompt, streaming) cannot be overridden. Field names follow the OpenAI API
(``reasoning_effort``) and vLLM/SGLang's extensions (``chat_template_kwargs``, ``top_k``, ``min_p``,
``repetition_penalty``, ``skip_special_tokens``, ``include_reasoning``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_OPTIONS_BYTES = 2048
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")

#: Fields the benchmark sets itself, each with the reason it cannot be given.
FIXED_BY_BENCHMARK = {
    "temperature": "decoding is greedy (temperature 0) for every model, so runs are comparable",
    "max_tokens": "each task sets its own token limit",
    "max_completion_tokens": "each task sets its own token limit",
    "model": "the model name is its own field",
    "messages": "the prompt is the benchmark's",
    "prompt": "the prompt is the benchmark's",
    "stop": "stop strings are the benchmark's",
    "stream": "streaming is decided by the probe",
    "stream_options": "streaming is decided by the probe",
    "n": "one answer per sample is scored",
    "logprobs": "log-probabilities are not used",
}


class OptionsError(ValueError):
    """Request options that are not allowed; ``problems`` lists one sentence per refused option."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Rule:
    describe: str
    check: Callable[[Any], bool]


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


TEMPLATE_KWARGS: dict[str, Rule] = {
    "enable_thinking": Rule("true or false (Qwen3-style templates)", _is_bool),
    "thinking": Rule("true or false (DeepSeek-V3.1-style templates)", _is_bool),
    "reasoning_effort": Rule(f"one of {', '.join(REASONING_EFFORTS)}", lambda v: v in REASONING_EFFORTS),
}

ALLOWED: dict[str, Rule] = {
    "reasoning_effort": Rule(f"one of {', '.join(REASONING_EFFORTS)}", lambda v: v in REASONING_EFFORTS),
    "top_k": Rule("a whole number, -1 (off) or at least 1", lambda v: _is_int(v) and (v == -1 or 1 <= v <= 100_000)),
    "top_p": Rule("a number above 0 and at most 1", lambda v: _is_number(v) and 0 < v <= 1),
    "min_p": Rule("a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1),
    "repetition_penalty": Rule("a number above 0 and at most 2", lambda v: _is_number(v) and 0 < v <= 2),
    "skip_special_tokens": Rule("true or false", _is_bool),
    "include_reasoning": Rule("true or false", _is_bool),
    "chat_template_kwargs": Rule(
        "an object with " + ", ".join(f"{k} ({r.describe})" for k, r in TEMPLATE_KWARGS.items()),
        lambda v: isinstance(v, Mapping)),
}


def describe_allowed() -> str:
    """One line per allowed option, for help texts."""
    return "; ".join(f"{name}: {rule.describe}" for name, rule in ALLOWED.items())


def validate_request_options(raw: Any) -> dict[str, Any]:
    """The options as a plain dict, or OptionsError naming every refused one and what is allowed instead.

    ``raw`` is a decoded JSON object (or None/empty for no options).
    """
    if raw in (None, "", {}):
        return {}
    if not isinstance(raw, Mapping):
        raise OptionsError(['Request options must be a JSON object, e.g. {"reasoning_effort": "low"}.'])
    problems: list[str] = []
    for name, value in raw.items():
        if name in FIXED_BY_BENCHMARK:
            problems.append(f"{name} cannot be set: {FIXED_BY_BENCHMARK[name]}.")
        elif name not in ALLOWED:
            problems.append(f"{name} is not an allowed option; allowed: {', '.join(ALLOWED)}.")
        elif not ALLOWED[name].check(value):
            problems.append(f"{name} must be {ALLOWED[name].describe}; got {json.dumps(value)[:60]}.")
        elif name == "chat_template_kwargs":
            for key, inner in value.items():
                rule = TEMPLATE_KWARGS.get(key)
                if rule is None:
                    problems.append(f"chat_template_kwargs.{key} is not allowed; allowed: "
                                    f"{', '.join(TEMPLATE_KWARGS)}.")
                elif not rule.check(inner):
                    problems.append(f"chat_template_kwargs.{key} must be {rule.describe}; "
                                    f"got {json.dumps(inner)[:60]}.")
    if not problems and len(json.dumps(raw)) > MAX_OPTIONS_BYTES:
        problems.append(f"Request options are limited to {MAX_OPTIONS_BYTES} bytes of JSON.")
    if problems:
        raise OptionsError(problems)
    return json.loads(json.dumps(raw))
