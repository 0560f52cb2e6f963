"""Tracing tasks: RULER's variable tracking and NeedleBench-style ancestral tracing."""

from __future__ import annotations

import string
from typing import Any

from ..errors import SpecError
from ..haystacks import INSERT_SEPARATOR, noise_units, prose_units
from ..lexicon import words
from ..params import Param
from ..plan import TURNS, Plan, TaskContext, TaskType, Turn, turns_of
from ..rng import Rng
from ..sizing import HaystackBuilder, Insert, UnitStream
from ..templates import RULER, TEMPLATE, V1, template_of


def _units(ctx: TaskContext, haystack: str):
    return noise_units if haystack == "noise" else prose_units(ctx.rng.child("haystack"))


def _sorted_depths(rng: Rng, k: int) -> list[int]:
    """k distinct integer depths in 0..100, ascending (so a chain reads in order)."""
    return sorted(rng.sample(range(101), k))


VT_INSTRUCTION = "Memorize and track the chain(s) of variable assignment hidden in the following text."
# RULER sizes its in-context example to 500 tokens (variable_tracking.py: main() builds it with max_seq_length=500).
VT_EXAMPLE_TOKENS = 500


def _vt_question(query: int) -> str:
    return f"Question: Find all variables that are assigned the value {query} in the text above."


def _vt_answer_prefix(count: int, query: int) -> str:
    return (f"Answer: According to the chain(s) of variable assignment in the text above, {count} variables "
            f"are assigned the value {query}, they are:")


def _draw_chains(rng: Rng, chains: int, hops: int, letters: int) -> tuple[list[str], list[int]]:
    """Distinct upper-case names (``chains * (hops + 1)``) and one distinct 5-digit value per chain."""
    names: list[str] = []
    while len(names) < chains * (hops + 1):
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters))
        if name not in names:
            names.append(name)
    values: list[int] = []
    while len(values) < chains:
        v = rng.between(10000, 99999)
        if v not in values:
            values.append(v)
    return names, values


def _statements(var: list[str], value: int, template: str, haystack: str) -> list[str]:
    """One chain's assignments. v1: sentences ending in a period. RULER (variable_tracking.py): bare
    ``VAR X = 12345`` lines in the noise, later hops with a trailing space; in running text each gets a period."""
    hops = len(var) - 1
    if template == V1:
        return [f"VAR {var[0]} = {value}."] + [f"VAR {var[j + 1]} = VAR {var[j]}." for j in range(hops)]
    lines = [f"VAR {var[0]} = {value}"] + [f"VAR {var[j + 1]} = VAR {var[j]} " for j in range(hops)]
    return [line.strip() + "." for line in lines] if haystack == "prose" else lines


def _chain_inserts(rng_depth: Rng, names: list[str], values: list[int], hops: int, template: str,
                   haystack: str) -> list[Insert]:
    sep = INSERT_SEPARATOR[haystack]
    inserts: list[Insert] = []
    for c, value in enumerate(values):
        var = names[c * (hops + 1) : (c + 1) * (hops + 1)]
        lines = _statements(var, value, template, haystack)
        for hop, (line, depth) in enumerate(zip(lines, _sorted_depths(rng_depth, hops + 1), strict=True)):
            inserts.append(Insert(line, depth, sep, {"chain": c, "hop": hop}))
    return inserts


def vt_example(ctx: TaskContext) -> str:
    """RULER's worked example, our own draw: chains of 3-letter names over at most 10 hops in the same haystack,
    the prompt (with its answer prefix) filled to about 500 tokens with whole units, then its answer.

    RULER (variable_tracking.py) generates one example per data set and renames its variables and value for
    every sample; drawing a fresh one per sample gives examples of the same shape."""
    p = ctx.params
    rng = ctx.rng.child("example")
    hops = min(10, p["num_hops"])
    names, values = _draw_chains(rng.child("chains"), p["num_chains"], hops, 3)
    inserts = _chain_inserts(rng.child("depth"), names, values, hops, RULER, p["haystack"])
    units = noise_units if p["haystack"] == "noise" else prose_units(rng.child("haystack"))
    head = VT_INSTRUCTION + "\n\n"
    tail = f"\n{_vt_question(values[0])} {_vt_answer_prefix(hops + 1, values[0])}"
    builder = HaystackBuilder(ctx.counter, UnitStream(ctx.counter, units), inserts, tail=False)
    budget = max(VT_EXAMPLE_TOKENS - ctx.counter.count(head + tail), builder.minimum_tokens())
    return head + builder.build(budget).text + tail + " " + " ".join(names[: hops + 1])


def plan_variable_tracking(ctx: TaskContext) -> Plan:
    p = ctx.params
    chains, hops = p["num_chains"], p["num_hops"]
    template = template_of(p)
    names, values = _draw_chains(ctx.rng.child("chains"), chains, hops, 5)
    inserts = _chain_inserts(ctx.rng.child("depth"), names, values, hops, template, p["haystack"])
    answers = names[: hops + 1]
    query = values[0]
    builder = HaystackBuilder(ctx.counter, UnitStream(ctx.counter, _units(ctx, p["haystack"])), inserts)
    # RULER puts its example before the task's own instruction (variable_tracking.py, randomize_icl and after).
    instruction = VT_INSTRUCTION if template == V1 else vt_example(ctx) + "\n\n" + VT_INSTRUCTION
    metadata: dict[str, Any] = {"query": query, "haystack": p["haystack"]}
    if template != V1:
        metadata["template"] = template
    # Shared-context mode: turn t asks for the variables of the t-th chain.
    followups = [Turn(_vt_question(values[c]), _vt_answer_prefix(hops + 1, values[c]),
                      names[c * (hops + 1) : (c + 1) * (hops + 1)], metadata={"query": values[c]})
                 for c in range(1, turns_of(p))]
    return Plan(
        instruction,
        _vt_question(query),
        _vt_answer_prefix(hops + 1, query),
        answers,
        builder,
        separators=("\n\n", "\n"),
        metadata=metadata,
        followups=followups,
    )


def _check_variable_tracking(params: dict[str, Any]) -> None:
    if turns_of(params) > params["num_chains"]:
        raise SpecError("params.turns", f"asks {turns_of(params)} chains in turn but there are only "
                        f"{params['num_chains']}; raise num_chains or lower turns")


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
    # Shared-context mode: turn t asks about the youngest of the (t-1)-th other family.
    followups = []
    for f in range(1, turns_of(p)):
        first = gens + (f - 1) * p["distractor_generations"]
        chain = names[first : first + p["distractor_generations"]]
        followups.append(Turn(ancestor_question(chain[-1]), ANCESTOR_PREFIX, [chain[0]],
                              metadata={"person": chain[-1], "chain": chain}))
    return Plan(
        "The following text mentions several families. Pay close attention to who is the parent of whom.",
        ancestor_question(youngest),
        ANCESTOR_PREFIX,
        [eldest],
        builder,
        separators=("\n\n", "\n\n"),
        metadata={"person": youngest, "chain": names[:gens], "haystack": p["haystack"]},
        followups=followups,
    )


ANCESTOR_PREFIX = "Answer: The eldest traceable ancestor is"


def ancestor_question(person: str) -> str:
    return (f"Question: Based on the family relationships in the text above, who is the eldest ancestor of {person} "
            "that can be traced? Give only the name.")


def _check_ancestral_trace(params: dict[str, Any]) -> None:
    if turns_of(params) > 1 + params["num_distractor_families"]:
        raise SpecError("params.turns", f"asks {turns_of(params)} families in turn but there are only "
                        f"{1 + params['num_distractor_families']}; raise num_distractor_families or lower turns")


HAYSTACK = Param("choice", "noise", "filler text", choices=("noise", "prose"), noun="haystack")

TASKS = [
    TaskType(
        "variable_tracking", "tracing", "string_match_all", 30,
        {
            "num_chains": Param("int", 1, "chains of assignments (the first is asked)", minimum=1, maximum=16),
            "num_hops": Param("int", 4, "assignments after the first in each chain", minimum=1, maximum=32),
            "haystack": HAYSTACK,
            "template": TEMPLATE,
            "turns": TURNS,
        },
        plan_variable_tracking,
        "Chains of VAR X = VAR Y; every variable holding the asked value is expected (with turns: chains in turn).",
        _check_variable_tracking,
    ),
    TaskType(
        "ancestral_trace", "tracing", "string_match_all", 32,
        {
            "num_generations": Param("int", 5, "people in the asked chain", minimum=2, maximum=20),
            "num_distractor_families": Param("int", 4, "unrelated chains", minimum=0, maximum=20),
            "distractor_generations": Param("int", 4, "people in each distractor chain", minimum=2, maximum=20),
            "haystack": Param("choice", "prose", "filler text", choices=("noise", "prose"), noun="haystack"),
            "turns": TURNS,
        },
        plan_ancestral_trace,
        "Parent-child statements scattered through the text; asks for the eldest ancestor of a person "
        "(with turns: one family after another).",
        _check_ancestral_trace,
    ),
]
