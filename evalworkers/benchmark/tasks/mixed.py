"""One context asked different kinds of question in turn (shared-context mode, after SCBench's mixed-task setting):
exact retrieval of a needle, multi-hop tracing of a family, and aggregation over every needle, cycling in that order.
No question repeats an earlier one (whose expected reply is in the conversation): retrieval asks another needle each
time, tracing another family, and aggregation first for the needles' words, then for their numbers."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from ..haystacks import INSERT_SEPARATOR, noise_units, prose_units
from ..lexicon import distinct_values, words
from ..params import Param
from ..plan import TURNS, Plan, TaskContext, TaskType, Turn, turns_of
from ..sizing import HaystackBuilder, Insert, UnitStream
from .niah import NEEDLE
from .tracing import ANCESTOR_PREFIX, PARENT_FORMS, ancestor_question

KINDS = ("retrieval", "tracing", "aggregation")
MAX_TURNS = 6  # two questions of each kind


def _retrieval(key: str, value: str) -> Turn:
    return Turn(f"What is the special magic number for {key} mentioned in the provided text?",
                f"The special magic number for {key} mentioned in the provided text is", [value],
                metadata={"kind": "retrieval", "queries": [key]})


def plan_mixed(ctx: TaskContext) -> Plan:
    p = ctx.params
    rng_needles, rng_family, rng_depth = ctx.rng.child("needles"), ctx.rng.child("family"), ctx.rng.child("depth")
    keys = distinct_values(rng_needles, "words", p["num_needles"])
    values = distinct_values(rng_needles, "numbers", p["num_needles"], exclude=set(keys))
    kinds = [KINDS[t % len(KINDS)] for t in range(turns_of(p))]
    firsts, lasts = words("first_names"), words("last_names")
    gens = p["num_generations"]
    people: list[str] = []
    while len(people) < gens * max(1, kinds.count("tracing")):
        name = f"{rng_family.choice(firsts)} {rng_family.choice(lasts)}"
        if all(name not in n and n not in name for n in people):
            people.append(name)
    families = [people[f * gens:(f + 1) * gens] for f in range(len(people) // gens)]
    sep = INSERT_SEPARATOR[p["haystack"]]
    pieces = [(NEEDLE.format(type="numbers", key=k, value=v), {"key": k, "value": v})
              for k, v in zip(keys, values, strict=True)]
    pieces += [(rng_family.choice(PARENT_FORMS).format(parent=family[g], child=family[g + 1]),
                {"family": f, "generation": g}) for f, family in enumerate(families) for g in range(gens - 1)]
    depths = [rng_depth.below(101) for _ in pieces]
    inserts = [Insert(text, depth, sep, info) for (text, info), depth in zip(pieces, depths, strict=True)]
    units = noise_units if p["haystack"] == "noise" else prose_units(ctx.rng.child("haystack"))
    builder = HaystackBuilder(ctx.counter, UnitStream(ctx.counter, units), inserts)

    questions: list[Turn] = []
    for turn, kind in enumerate(kinds):
        nth = kinds[:turn].count(kind)  # the how-manieth question of its kind
        if kind == "retrieval":
            questions.append(_retrieval(keys[nth], values[nth]))
        elif kind == "tracing":
            family = families[nth]
            questions.append(Turn(ancestor_question(family[-1]), ANCESTOR_PREFIX, [family[0]],
                                  metadata={"kind": "tracing", "person": family[-1], "chain": family}))
        elif nth == 0:
            questions.append(Turn(
                "Question: Which words have a special magic number in the text above? List every one of them.",
                "Answer: The words that have a special magic number are:", list(keys),
                metadata={"kind": "aggregation"}))
        else:
            questions.append(Turn(
                "Question: What are all the special magic numbers in the text above? List every one of them.",
                "Answer: The special magic numbers are:", list(values), metadata={"kind": "aggregation"}))
    first = questions[0]
    return Plan(
        "The following text hides special magic numbers for some words and mentions a family: who is the parent of "
        "whom. Read it carefully: I will ask you several questions about it.",
        first.question, first.answer_prefix, first.answers, builder, separators=("\n\n", "\n\n"),
        metadata={**first.metadata, "haystack": p["haystack"], "depth_percent": depths[0]},
        followups=questions[1:],
    )


def _check(params: dict[str, Any]) -> None:
    if turns_of(params) > MAX_TURNS:
        raise SpecError("params.turns", f"at most {MAX_TURNS} turns: after that a question would repeat an earlier one")
    retrievals = sum(KINDS[t % len(KINDS)] == "retrieval" for t in range(turns_of(params)))
    if retrievals > params["num_needles"]:
        raise SpecError("params.turns", f"{turns_of(params)} turns ask {retrievals} needles in turn but there are "
                        f"only {params['num_needles']}; raise num_needles or lower turns")


TASKS = [
    TaskType(
        "mixed_shared_context", "mixed", "string_match_all", 64,
        {
            "num_needles": Param("int", 4, "needles (words with a special magic number)", minimum=1, maximum=32),
            "num_generations": Param("int", 4, "people in the family chain", minimum=2, maximum=20),
            "haystack": Param("choice", "noise", "filler text", choices=("noise", "prose"), noun="haystack"),
            "turns": TURNS,
        },
        plan_mixed,
        "One context, several kinds of question in turn: a needle's value, a family's eldest ancestor, every "
        "needle's word (with turns 1: the retrieval question alone).",
        _check,
    ),
]
