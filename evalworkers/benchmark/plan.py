"""What a task type produces before sizing: fixed prompt parts, answers, and a context builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .params import Param
from .rng import Rng
from .sizing import BuiltContext
from .tokens import TokenCounter

CATEGORIES = ("retrieval", "tracing", "aggregation", "qa", "mixed")
METRICS = ("string_match_all", "string_match_part")
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
