"""Fitting a context into a token budget from piece counts, without re-tokenizing in a loop.

A context is a sequence of pieces (each carries its own leading separator). Pieces are counted once with
``TokenCounter.count_many`` (cached per counter), their counts are summed with prefix sums, and the number of
haystack units is chosen by bisection over those sums. The last, partial unit is cut at a word boundary to use
the remaining few tokens.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from .tokens import TokenCounter

# Words, with long tokens (UUIDs, hyphenated keys) cut after hyphens so that the last partial unit can use
# nearly every remaining token.
_WORD = re.compile(r"\s*[^\s-]+-?|\s*-")


class TooShort(Exception):
    """The mandatory content alone does not fit the budget."""

    def __init__(self, needed: int) -> None:
        self.needed = needed
        super().__init__(f"needs at least {needed} context tokens")


def largest_fitting(cost: Callable[[int], int], budget: int, *, low: int = 0, high: int | None = None) -> int:
    """The largest n >= low with cost(n) <= budget, for a cost that grows with n (cost(low) must fit).

    Without ``high`` the upper bound is found by doubling, so the caller need not guess one.
    """
    if high is None:
        high = max(low + 1, 16)
        while cost(high) <= budget:
            low, high = high, high * 2
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


@dataclass(frozen=True)
class BuiltContext:
    text: str
    tokens: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Insert:
    """A piece placed at a depth (needle, chain statement, gold document). ``text`` has no separator."""

    text: str
    depth_percent: float
    sep: str
    info: dict[str, Any] = field(default_factory=dict)


class UnitStream:
    """A lazily generated, counted sequence of haystack units (each with its leading separator)."""

    def __init__(self, counter: TokenCounter, next_units: Callable[[int], list[str]]) -> None:
        self._counter = counter
        self._next_units = next_units
        self.units: list[str] = []
        self.prefix: list[int] = [0]

    def ensure(self, budget: int) -> None:
        """Generate and count units until their total exceeds ``budget`` (so one more unit is known)."""
        while self.prefix[-1] <= budget:
            # A first small batch measures the unit size; later batches extrapolate from it.
            avg = self.prefix[-1] / len(self.units) if self.units else 0.0
            want = 32 if not self.units else max(16, int((budget - self.prefix[-1]) / max(avg, 1.0) * 1.05) + 4)
            fresh = self._next_units(want)
            if not fresh:
                raise RuntimeError("unit stream ended")
            self.units.extend(fresh)
            self.prefix.extend(list(accumulate(self._counter.count_many(fresh), initial=self.prefix[-1]))[1:])

    def fit(self, budget: int) -> int:
        """The largest n whose first n units fit ``budget``."""
        self.ensure(budget)
        return bisect.bisect_right(self.prefix, budget) - 1


def word_prefix(counter: TokenCounter, text: str, budget: int) -> tuple[str, int]:
    """The longest prefix of ``text`` made of whole words whose (additive) count fits ``budget``."""
    if budget <= 0:
        return "", 0
    words = _WORD.findall(text)
    used = 0
    for i, n in enumerate(counter.count_many(words)):
        if used + n > budget:
            return "".join(words[:i]), used
        used += n
    return "".join(words), used


class HaystackBuilder:
    """Haystack units with inserts placed at depths, optionally numbered (``label(i)`` starts piece i, 1-based)."""

    def __init__(
        self,
        counter: TokenCounter,
        stream: UnitStream,
        inserts: Sequence[Insert],
        *,
        label: Callable[[int], str] | None = None,
        tail: bool = True,
    ) -> None:
        self._counter = counter
        self._stream = stream
        self._inserts = list(inserts)
        self._label = label
        self._tail = tail
        self._insert_tokens = sum(counter.count_many([i.sep + i.text for i in self._inserts]))
        self._label_prefix: list[int] = [0]

    def _labels_upto(self, k: int) -> int:
        if self._label is None:
            return 0
        have = len(self._label_prefix) - 1
        if k > have:
            more = self._counter.count_many([self._label(i) for i in range(have + 1, max(k, 2 * have) + 1)])
            self._label_prefix.extend(list(accumulate(more, initial=self._label_prefix[-1]))[1:])
        return self._label_prefix[k]

    @property
    def inserts(self) -> tuple[Insert, ...]:
        """The pieces placed at depths, in the order of the built context's ``metadata["inserts"]``."""
        return tuple(self._inserts)

    def minimum_tokens(self) -> int:
        return self._insert_tokens + self._labels_upto(len(self._inserts))

    def _cost(self, n: int) -> int:
        return self._stream.prefix[n] + self._insert_tokens + self._labels_upto(n + len(self._inserts))

    def _position(self, depth_percent: float, n: int, tail_tokens: int) -> int:
        """The unit boundary nearest to ``depth_percent`` of the haystack's tokens (RULER places by token depth;
        counting units instead drifts when their lengths vary)."""
        prefix = self._stream.prefix
        want = depth_percent / 100.0 * (prefix[n] + tail_tokens)
        k = min(bisect.bisect_left(prefix, want, 0, n + 1), n)
        return k - 1 if k > 0 and want - prefix[k - 1] < prefix[k] - want else k

    def build(self, budget: int) -> BuiltContext:
        m = len(self._inserts)
        if self.minimum_tokens() > budget:
            raise TooShort(self.minimum_tokens())
        n = self._stream.fit(budget - self._insert_tokens)
        if self._label is not None:
            n = largest_fitting(self._cost, budget, high=n)  # the label costs grow with n
        used = self._cost(n)
        tail, tail_tokens = "", 0
        if self._tail and budget - used > 0:
            label = self._label(n + m + 1) if self._label is not None else ""
            label_tokens = self._counter.count_many([label])[0] if label else 0
            text, text_tokens = word_prefix(self._counter, self._stream.units[n], budget - used - label_tokens)
            if text.strip():
                tail, tail_tokens = label + text, text_tokens + label_tokens
        order = sorted(range(m), key=lambda j: (self._inserts[j].depth_percent, j))
        positions = {j: self._position(self._inserts[j].depth_percent, n, tail_tokens) for j in order}
        pieces: list[str] = []
        starts: dict[int, int] = {}
        offset = 0
        number = 0

        def add(text: str) -> None:
            nonlocal offset
            pieces.append(text)
            offset += len(text)

        def add_labelled(text: str) -> None:
            nonlocal number
            number += 1
            if self._label is not None:
                add(self._label(number))
            add(text)

        cursor = 0
        units = self._stream.units
        for j in order:
            for u in units[cursor : positions[j]]:
                add_labelled(u)
            cursor = max(cursor, positions[j])
            ins = self._inserts[j]
            number += 1
            if self._label is not None:
                add(self._label(number))
                starts[j] = offset
                add(ins.text)
            else:
                add(ins.sep)
                starts[j] = offset
                add(ins.text)
        for u in units[cursor:n]:
            add_labelled(u)
        if tail:
            add(tail)
        # The context starts at its first non-blank character: strip the leading pieces before joining, so that
        # the whole text is built once (a 1M-token context is several MB).
        shift = 0
        while pieces and not pieces[0].strip():
            shift += len(pieces.pop(0))
        if pieces:
            first = pieces[0].lstrip()
            shift += len(pieces[0]) - len(first)
            pieces[0] = first
        context = "".join(pieces)
        placed = [
            {**self._inserts[j].info, "depth_percent": self._inserts[j].depth_percent, "char_offset": starts[j] - shift}
            for j in range(m)
        ]
        return BuiltContext(context, used + tail_tokens, {"inserts": placed, "haystack_units": n})
