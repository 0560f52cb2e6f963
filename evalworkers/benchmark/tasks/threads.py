"""Needle threading (after Roberts et al. 2024, "Needle Threading: Can LLMs Follow Threads through Near-Million-
Scale Haystacks?"): chains of key-to-key links scattered through the haystack; each thread starts at a key and
ends at the key that leads nowhere. Variants: one thread; several interleaved threads with one asked; and every
thread asked at once ("follow every thread"). Keys are UUIDs, as in the paper. Scored like RULER's tracing task
(vt): ``string_match_all`` over the expected end keys.

Our own sentences; the haystack is RULER's noise line, generated prose, or unrelated links between fresh keys
(the paper's haystack is made of key-value pairs).
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from ..haystacks import INSERT_SEPARATOR, line_units, noise_units, prose_units
from ..params import Param
from ..plan import Plan, TaskContext, TaskType
from ..rng import Rng
from ..sizing import HaystackBuilder, Insert, UnitStream

LINK = "The thread at {a} continues at {b}."
DIRECTIONS = ("forward", "backward", "random")


def _keys(rng: Rng, k: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < k:
        key = rng.uuid4()
        if key not in taken:
            taken.add(key)
            out.append(key)
    return out


def _depths(rng: Rng, k: int, direction: str) -> list[int]:
    """k distinct depths for one thread's links in thread order: ascending (forward), descending (backward) or
    in no order (random)."""
    depths = rng.sample(range(101), k)
    if direction == "forward":
        depths.sort()
    elif direction == "backward":
        depths.sort(reverse=True)
    return depths


def plan_needle_threading(ctx: TaskContext) -> Plan:
    p = ctx.params
    n_threads, links, direction = p["num_threads"], p["thread_length"], p["direction"]
    follow_all = p["follow"] == "all"
    taken: set[str] = set()
    draw = ctx.rng.child("threads")
    threads = [_keys(draw, links + 1, taken) for _ in range(n_threads)]
    rng_depth = ctx.rng.child("depth")
    sep = INSERT_SEPARATOR[p["haystack"]]
    inserts: list[Insert] = []
    for t, keys in enumerate(threads):
        for hop, depth in enumerate(_depths(rng_depth, links, direction)):
            inserts.append(Insert(LINK.format(a=keys[hop], b=keys[hop + 1]), depth, sep, {"thread": t, "hop": hop}))
    if p["haystack"] == "noise":
        units = noise_units
    elif p["haystack"] == "prose":
        units = prose_units(ctx.rng.child("haystack"))
    else:
        rng_hay = ctx.rng.child("haystack")

        def unrelated() -> str:  # a link between two fresh keys: a thread of one link that nothing asks about
            a, b = _keys(rng_hay, 2, taken)
            return LINK.format(a=a, b=b)

        units = line_units(unrelated)
    asked = threads if follow_all else threads[:1]
    starts = [keys[0] for keys in asked]
    instruction = (
        "The text below hides threads: sentences saying that the thread at one key continues at another key. "
        "A thread ends at the key from which it does not continue. Follow the threads carefully."
    )
    if follow_all:
        question = ("Question: Follow, one by one, the threads that start at " + ", ".join(starts)
                    + ". At which key does each of them end? Give the end keys in the same order.")
        prefix = "Answer: In order, the threads end at"
    else:
        question = f"Question: Follow the thread that starts at {starts[0]}. At which key does it end?"
        prefix = f"Answer: The thread that starts at {starts[0]} ends at"
    builder = HaystackBuilder(ctx.counter, UnitStream(ctx.counter, units), inserts)
    metadata: dict[str, Any] = {"starts": starts, "threads": threads, "haystack": p["haystack"],
                                "direction": direction}
    return Plan(instruction, question, prefix, [keys[-1] for keys in asked], builder,
                separators=("\n\n", "\n\n"), metadata=metadata)


def _check(params: dict[str, Any]) -> None:
    if params["follow"] == "all" and params["num_threads"] < 2:
        raise SpecError("params.num_threads", "must be at least 2 when every thread is followed")


TASKS = [
    TaskType(
        "needle_threading", "tracing", "string_match_all", 128,
        {
            "num_threads": Param("int", 1, "threads in the text (interleaved when more than one)", minimum=1,
                                 maximum=16),
            "thread_length": Param("int", 4, "links in each thread", minimum=1, maximum=32),
            "follow": Param("choice", "one", "one: the first thread is asked; all: every thread is asked",
                            choices=("one", "all"), noun="follow mode"),
            "direction": Param("choice", "forward", "order of a thread's links in the text",
                               choices=DIRECTIONS, noun="direction"),
            "haystack": Param("choice", "prose", "filler text; links: unrelated links between fresh keys",
                              choices=("noise", "prose", "links"), noun="haystack"),
        },
        plan_needle_threading,
        "Chains of key-to-key links (UUIDs) through the text; asks where one thread, or every thread, ends.",
        _check,
    ),
]
