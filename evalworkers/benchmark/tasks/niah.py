"""Needle in a haystack, with RULER's needle sentence, templates and parameters."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from ..haystacks import INSERT_SEPARATOR, line_units, noise_units, prose_units
from ..lexicon import VALUE_TYPES, distinct_values, random_value
from ..params import Param
from ..plan import DEPTH_GRID, TURNS, Plan, TaskContext, TaskType, Turn, turns_of
from ..sizing import HaystackBuilder, Insert, UnitStream

NEEDLE = "One of the special magic {type} for {key} is: {value}."
SINGULAR = {"words": "word", "numbers": "number", "uuids": "uuid"}


def _schema(haystack: str, **extra: Param) -> dict[str, Param]:
    return {
        "haystack": Param("choice", haystack, "filler text", choices=("noise", "prose", "needles"), noun="haystack"),
        "key_type": Param("choice", "words", "type of the keys", choices=VALUE_TYPES, noun="key type"),
        "value_type": Param("choice", "numbers", "type of the values", choices=VALUE_TYPES, noun="value type"),
        "depth_percent": Param(
            "depth", None, "depth of the asked needle; null samples RULER's 40-point grid",
            minimum=0, maximum=100, nullable=True,
        ),
        **extra,
    }


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + ", and " + items[-1]


def plan_niah(ctx: TaskContext, num_keys: int, num_values: int, num_queries: int) -> Plan:
    p = ctx.params
    key_type, value_type = p["key_type"], p["value_type"]
    rng_needles, rng_depth = ctx.rng.child("needles"), ctx.rng.child("depth")
    keys = distinct_values(rng_needles, key_type, num_keys)
    values = distinct_values(rng_needles, value_type, num_keys * num_values, exclude=set(keys))
    needles = [(keys[i], values[i * num_values + j]) for i in range(num_keys) for j in range(num_values)]
    asked = keys[:num_queries]
    depth = p["depth_percent"]
    grid = [d for d in DEPTH_GRID if d != depth]
    depths = rng_depth.sample(grid, len(needles))
    if depth is not None:
        depths[0] = depth
    sep = INSERT_SEPARATOR[p["haystack"]]
    inserts = [
        Insert(NEEDLE.format(type=value_type, key=k, value=v), d, sep, {"key": k, "value": v, "asked": k in asked})
        for (k, v), d in zip(needles, depths, strict=True)
    ]

    if p["haystack"] == "noise":
        units = noise_units
    elif p["haystack"] == "prose":
        units = prose_units(ctx.rng.child("haystack"))
    else:
        rng_hay = ctx.rng.child("haystack")
        taken = set(keys) | set(values)

        def distractor() -> str:
            k = random_value(rng_hay, key_type)
            while k in taken:
                k = random_value(rng_hay, key_type)
            v = random_value(rng_hay, value_type)
            while v in taken:
                v = random_value(rng_hay, value_type)
            return NEEDLE.format(type=value_type, key=k, value=v)

        units = line_units(distractor)

    query = _join(asked)
    if num_queries * num_values == 1:
        noun = SINGULAR[value_type]
        instruction = (
            f"A special magic {noun} is hidden within the following text. Make sure to memorize it. "
            f"I will quiz you about the {noun} afterwards."
        )
        question = f"What is the special magic {noun} for {query} mentioned in the provided text?"
        prefix = f"The special magic {noun} for {query} mentioned in the provided text is"
    else:
        instruction = (
            f"Some special magic {value_type} are hidden within the following text. Make sure to memorize it. "
            f"I will quiz you about the {value_type} afterwards."
        )
        question = f"What are all the special magic {value_type} for {query} mentioned in the provided text?"
        prefix = f"The special magic {value_type} for {query} mentioned in the provided text are"
    answers = [v for k, v in needles if k in asked]
    builder = HaystackBuilder(ctx.counter, UnitStream(ctx.counter, units), inserts)
    followups = []
    if num_values == 1 and num_queries == 1:  # shared-context mode: turn t asks the t-th key, a needle of its own
        noun = SINGULAR[value_type]
        followups = [
            Turn(f"What is the special magic {noun} for {key} mentioned in the provided text?",
                 f"The special magic {noun} for {key} mentioned in the provided text is", [value],
                 metadata={"depth_percent": depth_t, "queries": [key]})
            for (key, value), depth_t in list(zip(needles, depths, strict=True))[1:turns_of(p)]
        ]
    return Plan(
        instruction, question, prefix, answers, builder,
        metadata={"depth_percent": depths[0], "haystack": p["haystack"], "queries": asked}, followups=followups,
    )


def _multikey(ctx: TaskContext) -> Plan:
    return plan_niah(ctx, ctx.params["num_keys"], 1, 1)


def _check_multikey(params: dict[str, Any]) -> None:
    if params["num_keys"] < 2 and params["haystack"] != "needles":
        raise SpecError("params.num_keys", "must be at least 2 unless the haystack is made of needles")
    if turns_of(params) > params["num_keys"]:
        raise SpecError("params.turns", f"asks {turns_of(params)} keys in turn but there are only "
                        f"{params['num_keys']} needles; raise num_keys or lower turns")


TASKS = [
    TaskType(
        "niah_single", "retrieval", "string_match_all", 128, _schema("noise"),
        lambda ctx: plan_niah(ctx, 1, 1, 1),
        "One needle; the question asks for its value.",
    ),
    TaskType(
        "niah_multikey", "retrieval", "string_match_all", 128,
        _schema("prose", num_keys=Param("int", 4, "needles with distinct keys (1 asked)", minimum=1, maximum=32),
                turns=TURNS),
        _multikey,
        "Several needles with different keys; one key is asked, the others distract (with turns: asked in turn).",
        _check_multikey,
    ),
    TaskType(
        "niah_multivalue", "retrieval", "string_match_all", 128,
        _schema("prose", num_values=Param("int", 4, "values stored for the asked key", minimum=2, maximum=32)),
        lambda ctx: plan_niah(ctx, 1, ctx.params["num_values"], 1),
        "One key with several values, all expected.",
    ),
    TaskType(
        "niah_multiquery", "retrieval", "string_match_all", 128,
        _schema("prose", num_queries=Param("int", 4, "keys asked at once", minimum=2, maximum=32)),
        lambda ctx: plan_niah(ctx, ctx.params["num_queries"], 1, ctx.params["num_queries"]),
        "Several keys asked at once; every value is expected.",
    ),
]
