"""Scoring, as percentages: RULER's substring matches after light normalisation, MRCR's sequence ratio, and the
long-output metrics (``long_output``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from difflib import SequenceMatcher
from typing import Any

from .answers import extract_answer
from .long_output import LONG_OUTPUT_METRICS, Scored, score_long_output

_CONTROL = re.compile(r"[\x00-\x1f]")
METRICS = ("string_match_all", "string_match_part", "sequence_ratio", *LONG_OUTPUT_METRICS)
# MRCR's random strings to prepend are 10 letters and digits; the expected answer starts with one.
PREFIX_CHARS = 10


def normalize_prediction(text: str) -> str:
    """RULER's postprocess_pred (strip, turn control characters into newlines, strip again) of the final answer.

    Any reasoning still in ``text`` is removed first (``answers.extract_answer``), so a raw reply is never
    credited for a value it only mentioned while thinking.
    """
    return _CONTROL.sub("\n", extract_answer(text).answer.strip()).strip()


def string_match_all(prediction: str, answers: list[str]) -> float:
    """Fraction of expected answers found in the prediction (case-insensitive), times 100."""
    if not answers:
        raise ValueError("answers must not be empty")
    pred = normalize_prediction(prediction).lower()
    return round(100.0 * sum(a.lower() in pred for a in answers) / len(answers), 2)


def string_match_part(prediction: str, answers: list[str]) -> float:
    """100 if any expected answer is found in the prediction (case-insensitive), else 0."""
    if not answers:
        raise ValueError("answers must not be empty")
    pred = normalize_prediction(prediction).lower()
    return 100.0 if any(a.lower() in pred for a in answers) else 0.0


def sequence_ratio(prediction: str, answers: list[str]) -> float:
    """OpenAI MRCR's grade, times 100: 0 unless the final answer starts with the expected answer's first
    ``PREFIX_CHARS`` characters (the string the question asked to prepend); otherwise, with that prefix removed from
    both, ``difflib.SequenceMatcher(None, answer, expected).ratio()``.

    Source: the ``grade`` function of the openai/mrcr dataset card (Hugging Face), as ported by evaluation suites
    (e.g. openbench's ``_sequence_ratio``). Case- and whitespace-sensitive inside, as there; only the reply's outer
    whitespace and any reasoning are removed first. ``answers`` holds exactly one expected text.
    """
    if len(answers) != 1 or len(answers[0]) <= PREFIX_CHARS:
        raise ValueError("sequence_ratio expects exactly one answer that starts with its prefix")
    expected = answers[0]
    prefix = expected[:PREFIX_CHARS]
    reply = extract_answer(prediction).answer.strip()
    if not reply.startswith(prefix):
        return 0.0
    ratio = SequenceMatcher(None, reply.removeprefix(prefix), expected.removeprefix(prefix)).ratio()
    return round(100.0 * ratio, 2)


def score_detail(prediction: str, answers: list[str], metric: str,
                 metadata: Mapping[str, Any] | None = None) -> Scored:
    """The score (0-100) and, for the long-output metrics (``long_output``), the figures behind it. Long replies
    are scored as written, after reasoning is removed (no control-character rewrite: their lines matter)."""
    if metric == "string_match_all":
        return Scored(string_match_all(prediction, answers))
    if metric == "string_match_part":
        return Scored(string_match_part(prediction, answers))
    if metric == "sequence_ratio":
        return Scored(sequence_ratio(prediction, answers))
    if metric in LONG_OUTPUT_METRICS:
        return score_long_output(extract_answer(prediction).answer.strip(), answers, metric, metadata or {})
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def score(prediction: str, answers: list[str], metric: str, metadata: Mapping[str, Any] | None = None) -> float:
    """The score (0-100); ``metadata`` is the sample's, which the long-output metrics read."""
    return score_detail(prediction, answers, metric, metadata).score
