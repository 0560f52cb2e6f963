"""One context asked several questions in turn (shared-context mode): the request type and the one way to run it.

A backend that can keep one context's cache across turns (the local model) answers a conversation itself through
its ``converse`` method; any other backend (an endpoint) gets each turn as a request of its own, in order, with the
whole conversation so far: a server that caches prefixes then reads only the new part (its time to first token
shows it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalworkers.backends.base import Backend, GenerationRequest, GenerationResult
from evalworkers.backends.concurrency import generate_one

if TYPE_CHECKING:
    from evalworkers.backends.retry import CircuitBreaker

#: ``on_turn(turn, result)``: a turn's result (1-based turn), as soon as it is known.
TurnCallback = Callable[[int, GenerationResult], None]


@dataclass(frozen=True)
class Conversation:
    """``turns[k]``: the request of turn k+1, which holds the whole conversation up to its question (earlier turns
    answered with their expected replies), so each turn's prompt extends the one before; the first turn's
    ``compress_until`` marks its context. ``needed``: the turns (1-based) to answer; the others are stored
    already and are only read, never answered again."""

    turns: tuple[GenerationRequest, ...]
    needed: frozenset[int]

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError("a conversation needs at least one turn")
        if not self.needed <= set(range(1, len(self.turns) + 1)):
            raise ValueError(f"needed turns {sorted(self.needed)} are not all in 1-{len(self.turns)}")


def converse(backend: Backend, conversation: Conversation, on_turn: TurnCallback, *,
             breaker: CircuitBreaker | None = None, stop: threading.Event | None = None) -> None:
    """Answer the conversation's needed turns in order, each result to ``on_turn`` as it comes; errors come back as
    results. A backend with its own ``converse(conversation, on_turn)`` (one cache for every turn) runs it whole;
    otherwise each needed turn is one request, sent after the one before has ended, none once ``stop`` is set or
    ``breaker`` is open."""
    own = getattr(backend, "converse", None)
    if own is not None:
        own(conversation, on_turn)
        return
    for turn, request in enumerate(conversation.turns, start=1):
        if turn not in conversation.needed:
            continue
        result = generate_one(backend, request, breaker, stop)
        if result.attempts == 0 and result.error is not None:
            return  # never sent (stopped, or the breaker is open): not a result
        on_turn(turn, result)
