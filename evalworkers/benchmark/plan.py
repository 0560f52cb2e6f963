"""What a task type produces before sizing: fixed prompt parts, answers, and a context builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .params import Param
from .rng import Rng
from .sizing import BuiltContext
from .tokens import TokenCounter

CATEGORIES = ("retrieval", "tracing", "aggregation", "qa")
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


@dataclass
class Plan:
    """A sample before its context is sized: the prompt reads instruction, sep, context, sep, question."""

    instruction: str
    question: str
    answer_prefix: str
    answers: list[str]
    builder: ContextBuilder
    separators: tuple[str, str] = ("\n", "\n")
    metadata: dict[str, Any] = field(default_factory=dict)


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
