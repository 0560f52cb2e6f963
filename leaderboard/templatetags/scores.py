"""Template filters for showing scores without inline styles (the Content-Security-Policy forbids them)."""

from __future__ import annotations

from django import template

register = template.Library()
BAND_STEP = 5  # points; static/css/site.css colours each band from red (0) to green (100)


@register.filter
def score_band(score: float | None) -> int:
    """`{{ score|score_band }}` -> the score rounded to the nearest band (0, 5, ..., 100), for a `band-N` class."""
    if score is None:
        return 0
    return int(min(100, max(0, round(float(score) / BAND_STEP) * BAND_STEP)))


@register.filter
def one_decimal(value: float | None) -> str:
    """`{{ score|one_decimal }}` -> "93.1", or an en dash for a missing figure: what floatformat:1 with that
    default shows on this English-only site, at a fraction of its cost over a 100-row table."""
    if value is None or value == "":
        return "–"
    return f"{float(value):.1f}"
