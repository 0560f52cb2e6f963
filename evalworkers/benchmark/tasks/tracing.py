"""Tracing tasks: RULER's variable tracking and NeedleBench-style ancestral tracing."""

from __future__ import annotations

import string

from ..haystacks import INSERT_SEPARATOR, noise_units, prose_units
from ..lexicon import words
from ..params import Param
from ..plan import Plan, TaskContext, TaskType
from ..rng import Rng
from ..sizing import HaystackBuilder, Insert, UnitStream


def _units(ctx: TaskContext, haystack: str):
    return noise_units if haystack == "noise" else prose_units(ctx.rng.child("haystack"))


def _sorted_depths(rng: Rng, k: int) -> list[int]:
    """k distinct integer depths in 0..100, ascending (so a chain reads in order)."""
    return sorted(rng.sample(range(101), k))


def plan_variable_tracking(ctx: TaskContext) -> Plan:
    p = ctx.params
    chains, hops = p["num_chains"], p["num_hops"]
    rng = ctx.rng.child("chains")
    names: list[str] = []
    while len(names) < chains * (hops + 1):
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(5))
        if name not in names:
            names.append(name)
    values: list[int] = []
    while len(values) < chains:
        v = rng.between(10000, 99999)
        if v not in values:
            values.append(v)
    sep = INSERT_SEPARATOR[p["haystack"]]
    rng_depth = ctx.rng.child("depth")
    inserts: list[Insert] = []
    for c in range(chains):
        var = names[c * (hops + 1) : (c + 1) * (hops + 1)]
        lines = [f"VAR {var[0]} = {values[c]}."] + [f"VAR {var[j + 1]} = VAR {var[j]}." for j in range(hops)]
        for hop, (line, depth) in enumerate(zip(lines, _sorted_depths(rng_depth, hops + 1), strict=True)):
            inserts.append(Insert(line, depth, sep, {"chain": c, "hop": hop}))
    answers = names[: hops + 1]
    query = values[0]
    builder = HaystackBuilder(ctx.counter, UnitStream(ctx.counter, _units(ctx, p["haystack"])), inserts)
    return Plan(
        "Memorize and track the chain(s) of variable assignment hidden in the following text.",
        f"Question: Find all variables that are assigned the value {query} in the text above.",
        f"Answer: According to the chain(s) of variable assignment in the text above, {hops + 1} variables "
        f"are assigned the value {query}, they are:",
        answers,
        builder,
        separators=("\n\n", "\n"),
        metadata={"query": query, "haystack": p["haystack"]},
    )


# Names carry no gender, so the relation is always "parent", phrased in several ways (NeedleBench varies them).
PARENT_FORMS = (
    "{parent} is the parent of {child}.",
    "{child}'s parent is {parent}.",
    "{parent} is {child}'s parent.",
    "{child} is a child of {parent}.",
    "As the parent of {child}, {parent} attended every school play.",
)


def plan_ancestral_trace(ctx: TaskContext) -> Plan:
    p = ctx.params
    gens = p["num_generations"]
    families = [gens] + [p["distractor_generations"]] * p["num_distractor_families"]
    rng = ctx.rng.child("families")
    firsts, lasts = words("first_names"), words("last_names")
    needed = sum(families)
    names: list[str] = []
    while len(names) < needed:
        name = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        if all(name not in n and n not in name for n in names):
            names.append(name)
    statements: list[tuple[str, int, int]] = []
    start = 0
    for f, size in enumerate(families):
        members = names[start : start + size]
        start += size
        for g in range(size - 1):
            text = rng.choice(PARENT_FORMS).format(parent=members[g], child=members[g + 1])
            statements.append((text, f, g))
    rng_depth = ctx.rng.child("depth")
    depths = [rng_depth.below(101) for _ in statements]
    sep = INSERT_SEPARATOR[p["haystack"]]
    inserts = [
        Insert(text, d, sep, {"family": f, "generation": g})
        for (text, f, g), d in zip(statements, depths, strict=True)
    ]
    youngest, eldest = names[gens - 1], names[0]
    builder = HaystackBuilder(ctx.counter, UnitStream(ctx.counter, _units(ctx, p["haystack"])), inserts)
    return Plan(
        "The following text mentions several families. Pay close attention to who is the parent of whom.",
        f"Question: Based on the family relationships in the text above, who is the eldest ancestor of {youngest} "
        "that can be traced? Give only the name.",
        "Answer: The eldest traceable ancestor is",
        [eldest],
        builder,
        separators=("\n\n", "\n\n"),
        metadata={"person": youngest, "chain": names[:gens], "haystack": p["haystack"]},
    )


HAYSTACK = Param("choice", "noise", "filler text", choices=("noise", "prose"), noun="haystack")

TASKS = [
    TaskType(
        "variable_tracking", "tracing", "string_match_all", 30,
        {
            "num_chains": Param("int", 1, "chains of assignments (the first is asked)", minimum=1, maximum=16),
            "num_hops": Param("int", 4, "assignments after the first in each chain", minimum=1, maximum=32),
            "haystack": HAYSTACK,
        },
        plan_variable_tracking,
        "Chains of VAR X = VAR Y; every variable holding the asked value is expected.",
    ),
    TaskType(
        "ancestral_trace", "tracing", "string_match_all", 32,
        {
            "num_generations": Param("int", 5, "people in the asked chain", minimum=2, maximum=20),
            "num_distractor_families": Param("int", 4, "unrelated chains", minimum=0, maximum=20),
            "distractor_generations": Param("int", 4, "people in each distractor chain", minimum=2, maximum=20),
            "haystack": Param("choice", "prose", "filler text", choices=("noise", "prose"), noun="haystack"),
        },
        plan_ancestral_trace,
        "Parent-child statements scattered through the text; asks for the eldest ancestor of a person.",
    ),
]
