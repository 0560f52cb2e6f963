"""Essay-like English prose generated from the frames in ``data/prose.json``.

It stands in for RULER's Paul Graham essays: natural sentences with no facts a model could look up, and nothing to
download. The bank is a fixed, finite list so that token counts of its sentences can be cached per tokenizer.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache

from .lexicon import load_data
from .rng import Rng

_SLOT = re.compile(r"\{(\w+)\}")
BANK_PARAGRAPHS = 480


def _fill(frame: str, slots: dict[str, list[str]], rng: Rng) -> str:
    text = _SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), frame)
    return text[0].upper() + text[1:]


@cache
def paragraphs() -> tuple[tuple[str, ...], ...]:
    """The prose bank: paragraphs of 3-7 sentences on one topic each, identical on every machine."""
    data = load_data("prose.json")
    slots: dict[str, list[str]] = data["slots"]
    topics = sorted(data["topics"])
    rng = Rng(hashlib.sha256(b"longctx-prose-bank-v1").digest())
    bank: list[tuple[str, ...]] = []
    for i in range(BANK_PARAGRAPHS):
        frames: list[str] = data["topics"][topics[i % len(topics)]]
        picked = rng.sample(frames, rng.between(3, 7))
        bank.append(tuple(_fill(frame, slots, rng) for frame in picked))
    return tuple(bank)


def corpus_text() -> str:
    """The whole bank as text (to train a test tokenizer on)."""
    return "\n\n".join(" ".join(p) for p in paragraphs())
