"""What a task type produces before sizing: fixed prompt parts, answers, and a context builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .params import Param
from .rng import Rng
from .sizing import BuiltContext
from .tokens import TokenCounter

CATEGORIES = ("retrieval", "tracing", "aggregation", "qa", "generation", "mixed")
# RULER's depth grid: np.round(np.linspace(0, 100, 40)); no value is a .5 tie, so round() agrees with numpy.
DEPTH_GRID: tuple[int, ...] = tuple(round(i * 100 / 39) for i in range(40))


class ContextBuilder(Protocol):
    def minimum_tokens(self) -> int: ...

    def build(self, budget: int) -> BuiltContext: ...


@dataclass(frozen=True)
class TaskContext:
    rng: Rng
    params: dict[str, Any]
    counter: TokenCounter
    length: int


@dataclass(frozen=True)
class Turn:
    """A later question about the same context (shared-context mode): asked after the earlier turns, answered
    from the context read once. ``metric`` empty: the task's own; ``metadata``: this question's facts (its
    needle's depth, its query), laid over the sample's."""

    question: str
    answer_prefix: str
    answers: list[str]
    metric: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """A sample before its context is sized: the prompt reads instruction, sep, context, sep, question.
    ``followups``: the questions of turns 2, 3, ... about the same context (empty: one question)."""

    instruction: str
    question: str
    answer_prefix: str
    answers: list[str]
    builder: ContextBuilder
    separators: tuple[str, str] = ("\n", "\n")
    metadata: dict[str, Any] = field(default_factory=dict)
    followups: list[Turn] = field(default_factory=list)


#: A task's number of turns (shared-context mode, after SCBench: one context, then questions in turn). Left out of the
#: params at 1, so the versions published before it keep their spec hashes and samples.
TURNS = Param("int", 1, "questions asked in turn about one context (shared-context mode); 1: one question",
              minimum=1, maximum=16, omit_default=True)


def turns_of(params: dict[str, Any]) -> int:
    """The number of turns a task's cleaned params ask for (absent: 1)."""
    return int(params.get("turns", 1))


@dataclass(frozen=True)
class TaskType:
    name: str
    category: str
    metric: str
    max_new_tokens: int
    params: dict[str, Param]
    plan: Callable[[TaskContext], Plan]
    description: str
    check: Callable[[dict[str, Any]], None] | None = None
    # A long-generation type's target reply length in the model's tokens, from its params (``output_tokens``);
    # None for the reading tasks, whose replies are short. Its default token limit derives from it.
    output_tokens: Callable[[dict[str, Any]], int] | None = None

    def target_output_tokens(self, params: dict[str, Any]) -> int | None:
        """The reply length the task asks for, in tokens (None: a short-answer task)."""
        return self.output_tokens(params) if self.output_tokens is not None else None

    def default_new_tokens(self, params: dict[str, Any] | None = None) -> int:
        """The token limit when a spec gives none: the type's fixed one, or for a long-generation type its
        target plus headroom (``new_tokens_for_output``)."""
        target = self.target_output_tokens(params or {}) if params is not None else None
        return new_tokens_for_output(target) if target is not None else self.max_new_tokens


def new_tokens_for_output(output_tokens: int) -> int:
    """The token limit for a reply whose gold length is ``output_tokens``: a quarter more (at least 32), so a model
    that writes the asked length in slightly different words is not cut off, and one that rambles is."""
    return output_tokens + max(32, output_tokens // 4)
