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
