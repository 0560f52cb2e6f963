"""A sample's context cut into haystack and inserted facts, for showing a curator exactly what a model reads.

The generator records where each insert (needle, chain statement, gold document) starts; its text comes from
planning the sample again, which is deterministic and cheap (no sizing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .generate import _plan
from .sample import Sample
from .tokens import TokenCounter


@dataclass(frozen=True)
class Segment:
    """A run of the context: ``kind`` is "haystack" (filler) or "insert" (a fact the task placed); ``label`` says
    which fact, e.g. "needle, asked"."""

    kind: str
    text: str
    label: str = ""


def insert_label(info: dict[str, Any]) -> str:
    """What an insert is, in words, from the facts the task recorded about it."""
    if "occurrence" in info:  # mrcr
        return f"reply {int(info['occurrence'])} to the repeated request{', asked' if info.get('asked') else ''}"
    if "asked" in info:
        return f"needle for {info.get('key', '?')}, {'asked' if info['asked'] else 'distractor'}"
    if "thread" in info:
        return f"thread {int(info['thread']) + 1}, link {int(info['hop']) + 1}"
    if "cue" in info:  # non_literal_needle
        return f"needle: {info.get('name', '?')} ({info['cue']}, in {info.get('target', '?')})"
    if "chain" in info:
        return f"chain {int(info['chain']) + 1}, statement {int(info['hop']) + 1}"
    if "family" in info:
        return f"family {int(info['family']) + 1}, generation {int(info['generation']) + 1}"
    if "role" in info:
        return f"{info['role']} document: {info.get('entity', '')}".rstrip(": ")
    return "inserted fact"


def context_segments(sample: Sample, *, seed: int, counter: TokenCounter) -> list[Segment]:
    """The sample's context as alternating haystack and insert segments (one haystack segment when the task
    places no inserts, as the aggregation tasks do). Joined, the segments' texts are the context exactly."""
    placed = sample.metadata.get("inserts") or []
    _, plan = _plan(seed, sample.task_key, sample.task_type, sample.metadata.get("params", {}), sample.length,
                    sample.index, counter)
    inserts = getattr(plan.builder, "inserts", ())
    spans: list[tuple[int, int, str]] = []
    for meta, insert in zip(placed, inserts, strict=False):
        start = meta.get("char_offset")
        if isinstance(start, int) and sample.context.startswith(insert.text, start):
            spans.append((start, start + len(insert.text), insert_label(meta)))
    segments: list[Segment] = []
    cursor = 0
    for start, end, label in sorted(spans):
        if start < cursor:
            continue
        if start > cursor:
            segments.append(Segment("haystack", sample.context[cursor:start]))
        segments.append(Segment("insert", sample.context[start:end], label))
        cursor = end
    if cursor < len(sample.context):
        segments.append(Segment("haystack", sample.context[cursor:]))
    return segments
