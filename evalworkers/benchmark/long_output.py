"""Scoring long replies without a judge model: extracted tables, many answers in one reply, length following.

Each scorer returns a ``Scored``: the sample's score (0-100) and the figures behind it (``detail``), which the
worker stores with the sample so a page can show, for example, where in a long reply the answers start failing.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROW_F1 = "row_f1"
ANSWERS_IN_ORDER = "answers_in_order"
LENGTH_FOLLOWING = "length_following"
LONG_OUTPUT_METRICS = (ROW_F1, ANSWERS_IN_ORDER, LENGTH_FOLLOWING)


@dataclass(frozen=True)
class Scored:
    """A score (0-100, two decimals) and the figures it was computed from (plain JSON values)."""

    score: float
    detail: dict[str, Any] = field(default_factory=dict)


# --- procedural extraction: rows of a table ------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_cell(text: str) -> str:
    """LongProc's ``normalize_answer`` for a table cell (princeton-pli/LongProc, html_to_tsv_evaluator.py):
    lower-case, punctuation removed, articles removed, then every whitespace removed."""
    return "".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def _split_row(line: str) -> list[str]:
    """A tab-separated line; a line without tabs is read as a Markdown table row (``| a | b |``)."""
    if "\t" in line:
        return line.split("\t")
    stripped = line.strip()
    if "|" in stripped:
        return [part for part in stripped.strip("|").split("|")]
    return [line]


def parse_rows(text: str, columns: Sequence[str]) -> list[tuple[str, ...]]:
    """The normalised data rows of a reply: LongProc's reading of a TSV, with three allowances for chat replies.

    Lines with another number of cells than ``columns`` are not rows (LongProc turns them into N/A rows, which
    never match; here they are dropped, which leaves precision unchanged except for prose around the table, and a
    cut-off last line is dropped as LongProc does). A line equal to the header is skipped wherever it is. A
    Markdown row (``| a | b |``) and its ``|---|`` rule are read as the same table.
    """
    header = tuple(normalize_cell(c) for c in columns)
    rows = []
    for line in text.splitlines():
        cells = _split_row(line)
        if len(cells) != len(columns):
            continue
        row = tuple(normalize_cell(c) for c in cells)
        if row == header or all(not c for c in row):
            continue
        rows.append(row)
    return rows


def row_f1(prediction: str, gold_rows: Sequence[str], columns: Sequence[str]) -> Scored:
    """Row-level precision, recall and F1 of an extracted table, times 100 (LongProc's HTML-to-TSV metric).

    ``gold_rows`` are tab-separated lines without the header. A predicted row counts when all its cells equal a
    gold row's after ``normalize_cell``; order does not matter (LongProc's unordered recall). Each gold row is
    matched at most once, so a row written twice counts once (LongProc would count it twice for precision).
    An empty table scores 0. Detail: precision, recall (0-1), predicted_rows, matched_rows, gold_rows.
    """
    gold = [tuple(normalize_cell(c) for c in row.split("\t")) for row in gold_rows]
    predicted = parse_rows(prediction, columns)
    remaining = Counter(gold)
    matched = 0
    for row in predicted:
        if remaining[row] > 0:
            remaining[row] -= 1
            matched += 1
    precision = matched / len(predicted) if predicted else 0.0
    recall = matched / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scored(round(100 * f1, 2), {
        "precision": round(precision, 4), "recall": round(recall, 4), "predicted_rows": len(predicted),
        "matched_rows": matched, "gold_rows": len(gold),
    })


# --- many answers in one reply -------------------------------------------------------------------------------------

_ANSWER_LINE = re.compile(r"^[\s*#>-]*A\s*(\d+)\s*[:.)\]-]\s*(.*)$", re.IGNORECASE | re.MULTILINE)


def answer_lines(text: str) -> dict[int, tuple[str, int]]:
    """Labelled answers (``A<n>: ...``, one per line) by number: (its text, its character offset in ``text``).
    The first answer given a number counts; later repeats are ignored."""
    found: dict[int, tuple[str, int]] = {}
    for match in _ANSWER_LINE.finditer(text):
        number = int(match.group(1))
        if number not in found:
            found[number] = (match.group(2), match.start())
    return found


def answers_in_order(prediction: str, gold: Sequence[str]) -> Scored:
    """K questions answered in one reply, scored per question (LongGenBench's setting: every answer of the long
    reply is checked against its own question).

    ``gold[i]`` is question i+1's expected values joined by ``" | "``; the answer labelled ``A<i+1>`` earns the
    fraction of those values it contains (case-insensitive). An unlabelled or missing answer earns 0. The score
    is the mean over questions times 100. Detail: ``per_question`` (each question's score 0-1, in question
    order), ``answer_offsets`` (each answer's character offset in the reply, or None), ``answered``, and
    ``first_miss`` (the first question not fully right, 1-based, or None).
    """
    if not gold:
        raise ValueError("gold must not be empty")
    given = answer_lines(prediction)
    per_question: list[float] = []
    offsets: list[int | None] = []
    for number, expected in enumerate(gold, start=1):
        values = [v for v in expected.split(" | ") if v]
        text, offset = given.get(number, ("", None))
        lowered = text.lower()
        per_question.append(round(sum(v.lower() in lowered for v in values) / len(values), 4) if values else 0.0)
        offsets.append(offset)
    first_miss = next((i for i, s in enumerate(per_question, start=1) if s < 1.0), None)
    return Scored(round(100 * sum(per_question) / len(per_question), 2), {
        "per_question": per_question, "answer_offsets": offsets,
        "answered": sum(o is not None for o in offsets), "first_miss": first_miss,
    })


# --- length following ----------------------------------------------------------------------------------------------

def length_score(required: int, produced: int) -> float:
    """LongWriter's length score S_l (0-100) for ``produced`` words against ``required`` (Bai et al. 2024,
    "LongWriter: Unleashing 10,000+ Word Generation from Long Context LLMs", THUDM/LongWriter
    evaluation/eval_length.py): 100 * max(0, 1 - (produced/required - 1) / 3) when the reply is longer,
    100 * max(0, 1 - (required/produced - 1) / 2) when it is shorter or equal. An empty reply scores 0.
    Raises ValueError when ``required`` is not positive."""
    if required <= 0:
        raise ValueError("required must be positive")
    if produced <= 0:
        return 0.0
    if produced > required:
        return 100.0 * max(0.0, 1.0 - (produced / required - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (required / produced - 1.0) / 2.0)


def count_words(text: str) -> int:
    """Words as LongWriter counts English text: runs of non-space characters."""
    return len(text.split())


def paragraphs(text: str) -> list[str]:
    """The reply's paragraphs: blocks separated by blank lines, empty ones dropped."""
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _longest_increasing(values: Sequence[int]) -> int:
    tails: list[int] = []
    for v in values:
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if tails[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(tails):
            tails.append(v)
        else:
            tails[lo] = v
    return len(tails)


LENGTH_WEIGHT, PRESENCE_WEIGHT, ORDER_WEIGHT = 0.5, 0.25, 0.25


def length_following(prediction: str, elements: Sequence[str], required_words: int) -> Scored:
    """A reply of ``required_words`` words whose paragraph j must contain ``elements[j-1]``, in that order.

    Score = 0.5 * length + 0.25 * presence + 0.25 * order (each 0-100): length is ``length_score`` of the word
    count; presence the share of elements the reply contains (whole word, case-insensitive); order the longest
    run of present elements in the required order (a longest increasing subsequence of their first occurrences)
    over all elements, as in Spinning the Golden Thread's check of required content in its place. Detail also
    gives ``placed``: the share found in their own paragraph.
    """
    if not elements:
        raise ValueError("elements must not be empty")
    words = count_words(prediction)
    lowered = prediction.lower()
    firsts: list[tuple[int, int]] = []
    for j, element in enumerate(elements):
        match = re.search(rf"\b{re.escape(element.lower())}\b", lowered)
        if match:
            firsts.append((match.start(), j))
    presence = len(firsts) / len(elements)
    order = _longest_increasing([j for _, j in sorted(firsts)]) / len(elements)
    parts = [p.lower() for p in paragraphs(prediction)]
    placed = sum(j < len(parts) and re.search(rf"\b{re.escape(e.lower())}\b", parts[j]) is not None
                 for j, e in enumerate(elements)) / len(elements)
    length = length_score(required_words, words)
    total = LENGTH_WEIGHT * length + PRESENCE_WEIGHT * 100 * presence + ORDER_WEIGHT * 100 * order
    return Scored(round(total, 2), {
        "words": words, "required_words": required_words, "length_score": round(length, 2),
        "presence": round(presence, 4), "order": round(order, 4), "placed": round(placed, 4),
        "paragraphs": len(parts),
    })


def score_long_output(prediction: str, answers: Sequence[str], metric: str, metadata: Mapping[str, Any]) -> Scored:
    """Dispatch on the metric; ``metadata`` is the sample's (columns, required words). Raises ValueError for
    another metric or missing metadata."""
    if metric == ROW_F1:
        return row_f1(prediction, answers, metadata["columns"])
    if metric == ANSWERS_IN_ORDER:
        return answers_in_order(prediction, answers)
    if metric == LENGTH_FOLLOWING:
        return length_following(prediction, answers, int(metadata["required_words"]))
    raise ValueError(f"unknown long-output metric {metric!r}")
