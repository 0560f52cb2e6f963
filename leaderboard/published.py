"""Published figures against the ones computed here from the same table (pure: no Django).

A published table prints its figures as text: "96.7", ">128k", "<4K", "TBD", "-". `parse_length` and `parse_score`
read them; `checks` compares the published effective length, average and weighted averages with ours and says for
each whether they agree. Published figures are rounded to 0.1, and so is each per-length score we start from: a mean
of such scores is within 0.05 of the unrounded one and the published mean was rounded once more, so two figures
within TOLERANCE (0.1) of each other agree.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

TOLERANCE = 0.1
_LENGTH = re.compile(r"^\s*([<>]?)\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_SCORE = re.compile(r"^\d+(?:\.\d+)?$")


class Agreement:
    AGREES = "agrees"
    DISAGREES = "disagrees"
    NOT_COMPARABLE = "not comparable"


def parse_length(text: str) -> tuple[str, int] | None:
    """("", 32768) for "32K", (">", 131072) for ">128k", ("<", 4096) for "<4K", ("", 1048576) for "1M"; None for ""
    and anything else. K is 1,024 tokens (RULER's and NoLiMa's 4K is 4,096), M 1,048,576."""
    match = _LENGTH.match(text or "")
    if match is None:
        return None
    sign, number, unit = match.groups()
    scale = {"k": 1024, "m": 1024 * 1024}.get(unit.lower(), 1)
    return sign, round(float(number) * scale)


def parse_score(text: str) -> float | None:
    """A published score (0-100) as a number; None for "", "-", "TBD" (not published)."""
    text = (text or "").strip()
    return float(text) if _SCORE.match(text) else None


def length_label(tokens: int | None) -> str:
    if tokens is None:
        return "none"
    if tokens >= 1024 * 1024 and tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}M"
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else f"{tokens:,}"


@dataclass(frozen=True)
class Check:
    figure: str  # "effective length", "average", "wAvg inc", "wAvg dec", "threshold"
    published: str  # as printed
    computed: str  # as we show it
    agreement: str  # Agreement.*
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def effective_length_check(published: str, computed: int | None, decided: bool, lengths: list[int]) -> Check | None:
    """Ours against the published effective length. ">L" with L the longest length means every length passes (ours is
    L); "<L" with L the shortest means none does (ours is None)."""
    parsed = parse_length(published)
    if parsed is None:
        return None
    shown = length_label(computed) if decided else "undetermined"
    if not decided:
        return Check("effective length", published, shown, Agreement.NOT_COMPARABLE,
                     "a length before the first failing one has no published score")
    sign, value = parsed
    if sign == ">":
        expected: int | None = max(lengths) if value >= max(lengths) else None
        agrees = expected is not None and computed == expected
    elif sign == "<":
        agrees = computed is None if value <= min(lengths) else (computed is not None and computed < value)
    else:
        agrees = computed == value
    note = "" if agrees else f"the published scores put the effective length at {shown}"
    return Check("effective length", published, shown, Agreement.AGREES if agrees else Agreement.DISAGREES, note)


def score_check(figure: str, published: str, computed: float | None, *, missing_note: str = "") -> Check | None:
    """Ours against a published aggregate (average, weighted averages, threshold), within TOLERANCE."""
    value = parse_score(published)
    if value is None:
        return None  # not published ("", "TBD"): nothing to compare
    if computed is None:
        return Check(figure, published, "none", Agreement.NOT_COMPARABLE, missing_note)
    shown = f"{computed:.1f}"
    if abs(value - computed) <= TOLERANCE + 1e-9:
        return Check(figure, published, shown, Agreement.AGREES)
    return Check(figure, published, shown, Agreement.DISAGREES,
                 f"differs by {computed - value:+.2f} from the figure computed from the published scores")
