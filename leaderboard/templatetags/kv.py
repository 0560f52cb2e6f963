"""Template filters naming KV points the one way the KV registry does (`registry.point_label`)."""

from __future__ import annotations

from django import template

from evalworkers.kv import registry

register = template.Library()


@register.filter
def kv_point(method: str, budget: float | None) -> str:
    """`{{ row.method|kv_point:row.budget }}` -> "ThinK, 40% of key channels pruned, 80% of KV bytes, logically"."""
    return registry.point_label(method, 1.0 if budget is None else float(budget))


@register.filter
def kv_offers(version: object) -> list[str]:
    """`{{ version|kv_offers }}`: every (method, budget) point the version runs, labelled."""
    offered = version.kv_offered()  # type: ignore[attr-defined]
    return [registry.point_label(m, b) for m, budgets in offered.items() for b in budgets]
