"""`{{ n|token_count }}`: 131072 -> "131,072" (django.contrib.humanize is not installed for one filter)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def token_count(value: object) -> str:
    try:
        return f"{int(value):,}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return str(value)


@register.filter
def params_text(params: object) -> str:
    """`{{ task.params|params_text }}`: "haystack noise, key_type words" instead of a Python dict."""
    from leaderboard.spec_fields import params_text as text

    return text(params if isinstance(params, dict) else None)
