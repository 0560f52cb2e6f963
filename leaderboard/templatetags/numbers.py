"""Template filters for whole numbers: `{{ n|thousands }}` -> "360,475,200"."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def thousands(value: object) -> str:
    """An integer with thousands separators; anything else unchanged (as text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)
