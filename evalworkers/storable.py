"""Text a model wrote, made storable in PostgreSQL before it is written. Pure Python, no Django.

PostgreSQL refuses two kinds of character that Python strings may hold:
- NUL (U+0000): ``text`` columns cannot contain it ("A string literal cannot contain NUL (0x00) characters"),
  and ``jsonb`` refuses the ``\\u0000`` escape ("unsupported Unicode escape sequence");
- lone surrogates (U+D800-U+DFFF), which JSON's ``\\ud800`` escapes can produce but UTF-8 cannot encode, so the
  driver fails before anything is sent.
Each is replaced with U+FFFD (the replacement character) and counted; a high and low surrogate that stand next to
each other are joined into the character they encode instead. Every other character, control characters included,
is stored as it came. https://www.postgresql.org/docs/current/datatype-character.html and
https://www.postgresql.org/docs/current/datatype-json.html
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, TypeVar

from evalworkers.evaluation import SampleOutcome

REPLACEMENT = "\ufffd"
SURROGATE = re.compile("[\ud800-\udfff]")
REPLACED_KEY = "replaced_chars"
"""Key of a sample's metadata holding how many characters were replaced (absent when none were)."""

T = TypeVar("T")


def storable_text(text: str) -> tuple[str, int]:
    """(text with NUL and lone surrogates replaced by U+FFFD, how many were replaced)."""
    count = text.count("\x00")
    text = text.replace("\x00", REPLACEMENT)
    if SURROGATE.search(text) is None:
        return text, count
    before = text.count(REPLACEMENT)
    # Through UTF-16: a surrogate pair becomes its character again; a lone surrogate decodes as U+FFFD.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text, count + text.count(REPLACEMENT) - before


def storable_json(value: T) -> tuple[T, int]:
    """The same for every string (keys included) inside JSON-like data: dicts, lists, tuples, scalars."""
    if isinstance(value, str):
        return storable_text(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        total, out = 0, {}
        for key, item in value.items():
            new_key, k = storable_json(key)
            new_item, i = storable_json(item)
            out[new_key] = new_item
            total += k + i
        return out, total  # type: ignore[return-value]
    if isinstance(value, list | tuple):
        items = [storable_json(item) for item in value]
        return [item for item, _ in items], sum(n for _, n in items)  # type: ignore[return-value]
    return value, 0


def storable_outcome(outcome: SampleOutcome) -> SampleOutcome:
    """The outcome with its prediction, expected answers, error and metadata storable; the number of characters
    replaced is added to the metadata under ``replaced_chars`` (when there were any)."""
    prediction, a = storable_text(outcome.prediction)
    expected, b = storable_json(list(outcome.expected))
    error, c = storable_text(outcome.error)
    metadata, d = storable_json(dict(outcome.metadata))
    fields: dict[str, Any] = {"finish_reason": outcome.finish_reason, "answer_found_by": outcome.answer_found_by}
    extra = 0
    for name, text in fields.items():
        fields[name], n = storable_text(text)
        extra += n
    total = a + b + c + d + extra
    if total == 0:
        return outcome
    metadata[REPLACED_KEY] = int(metadata.get(REPLACED_KEY) or 0) + total
    return dataclasses.replace(outcome, prediction=prediction, expected=expected, error=error, metadata=metadata,
                               **fields)
