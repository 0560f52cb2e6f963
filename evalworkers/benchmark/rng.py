"""Seeded randomness that depends only on explicit inputs.

Every stream is seeded from a SHA-256 of its inputs (never ``hash()``), and only the integer-based methods of
``random.Random`` are used, whose algorithms have been stable across Python versions since 3.2.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same text for equal values on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sample_seed(seed: int, task_key: str, params: dict[str, Any], length: int, index: int) -> bytes:
    """The root digest of one sample: a function of these five values and nothing else."""
    text = canonical_json([int(seed), task_key, params, int(length), int(index)])
    return hashlib.sha256(text.encode("utf-8")).digest()


class Rng:
    """A small facade over ``random.Random`` so that sub-streams are cheap and named."""

    def __init__(self, digest: bytes) -> None:
        self._digest = digest
        self._random = random.Random(int.from_bytes(digest, "big"))

    def child(self, name: str) -> Rng:
        """An independent stream for one purpose (needles, haystack, ...), so that changing how much of one
        stream is consumed (e.g. a different tokenizer needing more haystack) never changes the others."""
        return Rng(hashlib.sha256(self._digest + b"/" + name.encode("utf-8")).digest())

    def below(self, n: int) -> int:
        """Uniform integer in [0, n)."""
        if n <= 0:
            raise ValueError("n must be positive")
        return self._random.randrange(n)

    def between(self, low: int, high: int) -> int:
        """Uniform integer in [low, high] (both inclusive)."""
        return low + self.below(high - low + 1)

    def choice(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def shuffle(self, items: list[T]) -> None:
        """Fisher-Yates with ``below``; identical to random.shuffle's algorithm but independent of its float path."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """k distinct items in random order (partial Fisher-Yates over a copy)."""
        if k > len(items):
            raise ValueError("sample larger than population")
        pool = list(items)
        out: list[T] = []
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
            out.append(pool[i])
        return out

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def bits(self, k: int) -> int:
        return self._random.getrandbits(k)
