"""RULER's scoring: substring matches after light normalisation, as percentages."""

from __future__ import annotations

import re

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f]")
METRICS = ("string_match_all", "string_match_part")


def strip_thinking(text: str) -> str:
    """The answer part of a reasoning model's output: closed <think> blocks removed; with an unclosed <think>
    nothing was answered; with a lone </think> (the template opened it) only what follows counts."""
    text = _THINK.sub("", text)
    lower = text.lower()
    if "</think>" in lower:
        text = text[lower.rindex("</think>") + len("</think>") :]
    elif "<think>" in lower:
        text = text[: lower.index("<think>")]
    return text


def normalize_prediction(text: str) -> str:
    """RULER's postprocess_pred: strip, turn control characters into newlines, strip again."""
    return _CONTROL.sub("\n", strip_thinking(text).strip()).strip()


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
