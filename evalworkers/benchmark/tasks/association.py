"""Needles without literal matches, in the style of NoLiMa (Modarressi et al. 2025, "NoLiMa: Long-Context
Evaluation Beyond Literal Matching"): the needle says that a character lives next to a landmark, the question asks
which character has been to the landmark's city. The question shares no content word with the needle, so the
model must make one step of association (landmark -> city) instead of matching words. The ``literal`` variant is
the control: the needle states the question's fact in the question's words, so a version that runs both shows the
gap between literal and non-literal retrieval at each length.

The association table is ours, shipped and versioned in ``data/associations.json``; the haystack is the generated
prose (which names no people, cities or landmarks) or RULER's noise line.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from ..haystacks import INSERT_SEPARATOR, noise_units, prose_units
from ..lexicon import load_data, words
from ..params import Param
from ..plan import DEPTH_GRID, Plan, TaskContext, TaskType
from ..sizing import HaystackBuilder, Insert, UnitStream

ASSOCIATIONS = "associations.json"
RELATION = "landmark_city"
VARIANTS = ("non_literal", "literal")
# Words that carry no content: shared ones do not count as a literal match.
STOPWORDS = frozenset((
    "a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "with", "from", "and", "or", "but", "is", "are",
    "was", "were", "be", "been", "has", "have", "had", "it", "its", "that", "this", "which", "who", "whom", "what",
    "where", "when", "how", "there", "their", "they", "he", "she", "his", "her", "them", "as", "into", "over",
    "next", "most", "before", "after", "every", "each", "some", "any",
))
_WORD = re.compile(r"[a-z]+")


def content_words(text: str) -> set[str]:
    """Lower-case words of ``text`` less ``STOPWORDS``: what a literal match would latch on to."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


@cache
def table() -> dict[str, Any]:
    """The association table of ``RELATION``: needle templates, the literal needle, the question and the
    (cue, target) pairs. ValueError if an entry breaks the table's rule (a target word inside its cue)."""
    relation = load_data(ASSOCIATIONS)["relations"][RELATION]
    for cue, target in relation["pairs"]:
        if content_words(target) & content_words(cue):
            raise ValueError(f"{ASSOCIATIONS}: the cue {cue!r} names its target {target!r}")
    return relation


def plan_non_literal_needle(ctx: TaskContext) -> Plan:
    p = ctx.params
    relation = table()
    draw = ctx.rng.child("needles")
    cue, target = draw.choice(relation["pairs"])
    name = draw.choice(words("first_names"))
    if p["variant"] == "literal":
        needle = relation["literal_needle"].format(name=name, target=target)
    else:
        needle = draw.choice(relation["needles"]).format(name=name, cue=cue)
    depth = p["depth_percent"]
    if depth is None:
        depth = ctx.rng.child("depth").choice(DEPTH_GRID)
    sep = INSERT_SEPARATOR[p["haystack"]]
    insert = Insert(needle, depth, sep, {"name": name, "cue": cue, "target": target})
    units = noise_units if p["haystack"] == "noise" else prose_units(ctx.rng.child("haystack"))
    builder = HaystackBuilder(ctx.counter, UnitStream(ctx.counter, units), [insert])
    asked = relation["question"].format(target=target)
    return Plan(
        "A long text follows. Somewhere in it, a character is mentioned. Read it carefully: afterwards you will be "
        "asked about that character.",
        f"Question: {asked} Answer with the character's name only.",
        "Answer: The character is",
        [name],
        builder,
        separators=("\n\n", "\n\n"),
        metadata={"depth_percent": depth, "variant": p["variant"], "needle": needle, "cue": cue, "target": target,
                  "haystack": p["haystack"]},
    )


TASKS = [
    TaskType(
        "non_literal_needle", "retrieval", "string_match_all", 32,
        {
            "variant": Param("choice", "non_literal",
                             "non_literal: the question shares no content word with the needle (one association "
                             "step); literal: the control, the needle states the question's fact in its words",
                             choices=VARIANTS, noun="variant"),
            "haystack": Param("choice", "prose", "filler text", choices=("noise", "prose"), noun="haystack"),
            "depth_percent": Param("depth", None, "depth of the needle; null samples RULER's 40-point grid",
                                   minimum=0, maximum=100, nullable=True),
        },
        plan_non_literal_needle,
        "One character-landmark needle; the question names the landmark's city, not the landmark (NoLiMa style), "
        "or, in the literal control, the needle's own words.",
    ),
]
