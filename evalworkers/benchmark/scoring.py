"""RULER's scoring: substring matches after light normalisation, as percentages."""

from __future__ import annotations

import re

from .answers import extract_answer

_CONTROL = re.compile(r"[\x00-\x1f]")
METRICS = ("string_match_all", "string_match_part")


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


def score(prediction: str, answers: list[str], metric: str) -> float:
    if metric == "string_match_all":
        return string_match_all(prediction, answers)
    if metric == "string_match_part":
        return string_match_part(prediction, answers)
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
