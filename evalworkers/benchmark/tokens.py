"""Token counting for sizing prompts to a model's tokenizer.

Sizing counts small pieces (sentences, list items) once and adds them up, so counters keep a cache of piece
counts; the assembled prompt is then counted once with ``count`` to verify.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tokenizers import Tokenizer

_CACHE_LIMIT = 400_000


@runtime_checkable
class TokenCounter(Protocol):
    """What the generator needs from a model's tokenizer. Counts exclude special tokens (BOS, chat markup);
    reserve those with ``RenderOptions.reserve_tokens``."""

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


class HFTokenCounter:
    """Exact counts from a Hugging Face ``tokenizers.Tokenizer`` (or a transformers tokenizer)."""

    def __init__(self, tokenizer: Any) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if isinstance(tokenizer, Tokenizer):
            self._tok: Tokenizer | None = tokenizer
            self._slow: Any = None
        elif isinstance(backend, Tokenizer):
            self._tok, self._slow = backend, None
        elif callable(getattr(tokenizer, "encode", None)):
            self._tok, self._slow = None, tokenizer
        else:
            raise TypeError("expected a tokenizers.Tokenizer or a transformers tokenizer")
        self._cache: dict[str, int] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> HFTokenCounter:
        return cls(Tokenizer.from_file(str(path)))

    def count(self, text: str) -> int:
        if self._tok is not None:
            # The batch entry point skips offset tracking: about twice as fast on long prompts.
            return len(self._tok.encode_batch_fast([text], add_special_tokens=False)[0])
        return len(self._slow.encode(text, add_special_tokens=False))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Counts of many short texts, each counted once per counter (cached) and the misses in one batch."""
        cache = self._cache
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            if len(cache) + len(missing) > _CACHE_LIMIT:
                cache.clear()
            if self._tok is not None:
                encoded = self._tok.encode_batch_fast(missing, add_special_tokens=False)
                cache.update(zip(missing, (len(e) for e in encoded), strict=True))
            else:
                cache.update((t, self.count(t)) for t in missing)
        return [cache[t] for t in texts]


class CalibratedCounter:
    """Estimated counts for an endpoint whose tokenizer we cannot run: characters divided by a ratio.

    The ratio starts from the probe (prose) and is set for each cell's own haystack kind by ``calibrate`` from
    the server's count of one of the cell's prompts, then corrected from every response's
    ``usage.prompt_tokens`` (``update``). ``margin`` overestimates a little on purpose, so that a prompt sized
    with it rarely exceeds its window; it is kept below the 2% a sized prompt may fall short of its target.
    Thread-safe: a cell's requests update it from several threads.
    """

    def __init__(self, chars_per_token: float, *, margin: float = 0.0075, prior_weight_chars: int = 4000) -> None:
        if not chars_per_token > 0:
            raise ValueError("chars_per_token must be positive")
        self.margin = margin
        self._chars = float(prior_weight_chars)
        self._tokens = prior_weight_chars / chars_per_token
        self._lock = threading.Lock()

    @classmethod
    def from_probe(cls, probe_text: str, reported_prompt_tokens: int, **kwargs: Any) -> CalibratedCounter:
        """The starting ratio from one probe request whose prompt tokens the endpoint reported."""
        if reported_prompt_tokens <= 0:
            raise ValueError("reported_prompt_tokens must be positive")
        return cls(len(probe_text) / reported_prompt_tokens, prior_weight_chars=len(probe_text), **kwargs)

    @property
    def chars_per_token(self) -> float:
        return self._chars / self._tokens

    def update(self, prompt_chars_or_text: int | str, reported_prompt_tokens: int) -> None:
        """Fold one observation in (weighted by its size, so long prompts dominate, as they should)."""
        chars = len(prompt_chars_or_text) if isinstance(prompt_chars_or_text, str) else int(prompt_chars_or_text)
        if chars <= 0 or reported_prompt_tokens <= 0:
            return
        with self._lock:
            self._chars += chars
            self._tokens += reported_prompt_tokens

    def calibrate(self, chars: int, reported_tokens: int) -> None:
        """Replace the ratio by one measured on the cell's own text (the prose prior no longer counts)."""
        if chars > 0 and reported_tokens > 0:
            with self._lock:
                self._chars, self._tokens = float(chars), float(reported_tokens)

    def _estimate(self, chars: int) -> float:
        return chars / self.chars_per_token * (1.0 + self.margin)

    def count(self, text: str) -> int:
        return math.ceil(self._estimate(len(text)))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        # Rounded rather than ceiled, so that sums over many pieces stay close to ``count`` of their join.
        return [round(self._estimate(len(t))) for t in texts]


class ExactCounter:
    """Exact counts of whole prompts from a function (a server's tokenize route), estimates for pieces.

    Sizing sums estimated piece counts (``count_many``) and verifies the assembled prompt with ``count``, so a
    few exact counts per sample make it length-exact without tokenizing every sentence remotely. ``estimate``
    is corrected by every exact count, so later samples need fewer.
    """

    def __init__(self, count_fn: Callable[[str], int], estimate: CalibratedCounter) -> None:
        self._count_fn = count_fn
        self.estimate = estimate

    def count(self, text: str) -> int:
        tokens = self._count_fn(text)
        self.estimate.update(len(text), tokens)
        return tokens

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return self.estimate.count_many(texts)
