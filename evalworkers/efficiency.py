"""The KV-cache and memory figures a local model's generation measures: one typed record, one set of names.

The names are the `Cell` columns' names and the API's (units in the names), so the record goes from measurement
(``kv.generation``) to the sample's stored metadata (``as_json``/``from_json``) to the cell (``of_cell``) and the
page without a rename. Time to first token and decode speed are not here: every backend measures those, and they
travel on ``GenerationResult``/``SampleOutcome`` (``ttft_s``, ``decode_tokens_per_s``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from statistics import fmean
from typing import Any

# Names written by earlier releases in stored samples' metadata, read as today's names.
_FORMER_NAMES = {"peak_mem_bytes": "peak_memory_bytes"}


@dataclass(frozen=True)
class Efficiency:
    """What one generation (or, from ``of_cell``, one cell's samples on average) did to the KV cache.

    ``kv_bytes``: the cache measured after prefill over the compressed tokens, bytes; ``kv_bytes_full``: the same
    tokens' uncompressed cache, bytes; ``kept_fraction``: kv_bytes / kv_bytes_full, or the logical fraction for
    methods that mask without freeing (then ``physical`` is False); ``query_aware``: the press saw the question;
    ``peak_memory_bytes``: the accelerator's (or process's) peak during the generation; ``prefill_s``: seconds;
    ``kv_bytes_end``: the cache measured once decoding ended (prefill plus every generated token), bytes: what a
    long reply adds to the cache, which no press compresses.
    ``kv_bytes_after_turns``: in the shared-context mode, the cache held once the last turn was answered (the
    compressed context plus every turn's question and reply), bytes; None for one question.
    """

    kv_bytes: int | None = None
    kv_bytes_full: int | None = None
    kept_fraction: float | None = None
    physical: bool = True
    query_aware: bool = False
    peak_memory_bytes: int | None = None
    prefill_s: float | None = None
    kv_bytes_end: int | None = None
    kv_bytes_after_turns: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Efficiency | None:
        """The record stored by ``as_json`` (also under earlier releases' names); None for no record."""
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        values = {_FORMER_NAMES.get(key, key): value for key, value in data.items()}
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def of_cell(cls, measured: Sequence[Efficiency]) -> Efficiency | None:
        """A cell's figures: the samples' means (bytes rounded to whole bytes), the peak memory's maximum,
        physical only if every sample's was, query-aware if any sample's was. None when nothing was measured."""
        if not measured:
            return None

        def mean(name: str) -> float | None:
            values = [getattr(m, name) for m in measured if getattr(m, name) is not None]
            return fmean(values) if values else None

        kv_bytes, full = mean("kv_bytes"), mean("kv_bytes_full")
        end, after = mean("kv_bytes_end"), mean("kv_bytes_after_turns")
        peaks = [m.peak_memory_bytes for m in measured if m.peak_memory_bytes is not None]
        return cls(
            kv_bytes=round(kv_bytes) if kv_bytes is not None else None,
            kv_bytes_full=round(full) if full is not None else None,
            kept_fraction=mean("kept_fraction"),
            physical=all(m.physical for m in measured),
            query_aware=any(m.query_aware for m in measured),
            peak_memory_bytes=max(peaks) if peaks else None,
            prefill_s=mean("prefill_s"),
            kv_bytes_end=round(end) if end is not None else None,
            kv_bytes_after_turns=round(after) if after is not None else None,
        )
