"""Unit streams for the filler text: RULER's noise line, generated prose, or distractor needles."""

from __future__ import annotations

from collections.abc import Callable

from . import prose
from .rng import Rng

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
# How an inserted sentence joins each haystack: noise and needles are lines, prose is running text.
INSERT_SEPARATOR = {"noise": "\n", "needles": "\n", "links": "\n", "prose": " "}


def noise_units(want: int) -> list[str]:
    return ["\n" + NOISE] * want


def prose_units(rng: Rng) -> Callable[[int], list[str]]:
    """Sentences of the prose bank, paragraph by paragraph in a random order that is reshuffled each cycle."""
    bank = prose.paragraphs()
    order: list[int] = []

    def more(want: int) -> list[str]:
        out: list[str] = []
        while len(out) < want:
            if not order:
                order.extend(range(len(bank)))
                rng.shuffle(order)
                order.reverse()  # pop() from the end walks the shuffled order front to back
            paragraph = bank[order.pop()]
            out.append("\n\n" + paragraph[0])
            out.extend(" " + s for s in paragraph[1:])
        return out

    return more


def line_units(make_line: Callable[[], str]) -> Callable[[int], list[str]]:
    def more(want: int) -> list[str]:
        return ["\n" + make_line() for _ in range(want)]

    return more
