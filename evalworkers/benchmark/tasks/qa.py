"""Synthetic QA over generated documents about fictional people, companies and cities.

Stands in for RULER's SQuAD (single hop) and HotpotQA (two hops): every fact is generated, so nothing is
downloaded and nothing can be answered from pre-training. Optional confusing facts (LV-Eval's idea) add
near-duplicate entities whose attributes conflict with the asked one.
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from ..lexicon import city_name, company_name, person_name, words
from ..params import Param
from ..plan import DEPTH_GRID, Plan, TaskContext, TaskType
from ..rng import Rng
from ..sizing import HaystackBuilder, Insert, UnitStream

Entity = dict[str, Any]
INSTRUCTION = (
    "Answer the question based on the given documents. Only give me the answer and do not output any other words."
)
VOWELS = "aeiou"


class World:
    """Entities with unique names; names reserved for the question never appear in distractors."""

    def __init__(self, rng: Rng) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.reserved: set[str] = set()

    def _fresh(self, make) -> str:
        for _ in range(10_000):
            name = make(self.rng)
            if name not in self.used:
                self.used.add(name)
                return name
        raise SpecError("length", "too long for the pool of entity names")

    def _ref(self, make) -> str:
        """A name mentioned in passing (founder, city), never one the question is about."""
        while True:
            name = make(self.rng)
            if name not in self.reserved:
                return name

    def person(self, name: str | None = None, **over: Any) -> Entity:
        r = self.rng
        e = {
            "kind": "person", "name": name or self._fresh(person_name),
            "profession": r.choice(words("professions")), "city": self._ref(city_name),
            "year": r.between(1931, 1999), "hobby": r.choice(words("hobbies")), "color": r.choice(words("colors")),
        }
        return {**e, **over}

    def company(self, name: str | None = None, **over: Any) -> Entity:
        r = self.rng
        e = {
            "kind": "company", "name": name or self._fresh(company_name), "founder": self._ref(person_name),
            "city": self._ref(city_name), "year": r.between(1850, 2015), "product": r.choice(words("products")),
            "staff": r.between(12, 4000),
        }
        return {**e, **over}

    def city(self, name: str | None = None, **over: Any) -> Entity:
        r = self.rng
        e = {
            "kind": "city", "name": name or self._fresh(city_name), "population": r.between(3, 900) * 1000,
            "landmark": r.choice(words("landmarks")), "dish": r.choice(words("dishes")),
        }
        return {**e, **over}

    def near_duplicate(self, name: str) -> str:
        """The same name with one vowel of its longest word changed (e.g. Ada Lindgren -> Ada Lindgran)."""
        parts = name.split(" ")
        # The longest word that has a vowel (a generated word may have none, e.g. "Brynn"); else the longest.
        by_length = sorted(range(len(parts)), key=lambda i: (-len(parts[i]), i))
        w = next((i for i in by_length if any(ch in VOWELS for ch in parts[i])), by_length[0])
        word = parts[w]
        spots = [i for i, ch in enumerate(word) if ch in VOWELS] or list(range(1, len(word))) or [0]
        for _ in range(1000):
            i = self.rng.choice(spots)
            vowel = self.rng.choice([v for v in VOWELS if v != word[i]])
            cand = " ".join([*parts[:w], word[:i] + vowel + word[i + 1 :], *parts[w + 1 :]])
            if cand not in self.used:
                self.used.add(cand)
                return cand
        raise SpecError("params.confusing_facts", "too many near-duplicates for one name")


def _article(word: str) -> str:
    return "an" if word[0] in VOWELS else "a"


def render(e: Entity) -> str:
    if e["kind"] == "person":
        first = e["name"].split(" ")[0]
        return (
            f"{e['name']} is {_article(e['profession'])} {e['profession']} who was born in {e['city']} in {e['year']}. "
            f"Outside work, {first} is devoted to {e['hobby']}. {first}'s favourite color is {e['color']}."
        )
    if e["kind"] == "company":
        return (
            f"{e['name']} was founded in {e['year']} by {e['founder']}. The company is headquartered in "
            f"{e['city']} and is best known for making {e['product']}. It employs about {e['staff']} people."
        )
    return (
        f"{e['name']} is a city of about {e['population']} inhabitants. Visitors come mainly to see "
        f"{e['landmark']}. The most famous local dish is {e['dish']}, which is served at every festival."
    )


def _landmark(value: str) -> str:
    return value.split(" ", 1)[1]


# Single-hop questions: (subject kind, attribute, question, answer from value)
SINGLE = (
    ("person", "profession", "What is the profession of {s}?", str),
    ("person", "hobby", "Which hobby is {s} devoted to?", str),
    ("company", "product", "What is {s} best known for making?", str),
    ("company", "year", "In which year was {s} founded?", str),
    ("city", "landmark", "What do visitors mainly come to {s} to see?", _landmark),
    ("city", "dish", "What is the most famous local dish of {s}?", str),
)
# Two-hop: (subject kind, link attribute, bridge kind, attribute of the bridge, question)
DOUBLE = (
    ("company", "founder", "person", "profession", "What is the profession of the person who founded {s}?", str),
    ("company", "founder", "person", "hobby", "Which hobby is the founder of {s} devoted to?", str),
    ("person", "city", "city", "dish", "What is the most famous local dish of the city where {s} was born?", str),
    ("company", "city", "city", "landmark",
     "What do visitors mainly come to see in the city where {s} is headquartered?", _landmark),
)
VALUES = {"profession": "professions", "hobby": "hobbies", "product": "products", "landmark": "landmarks",
          "dish": "dishes"}


def _other_value(rng: Rng, attr: str, avoid: list[Any]) -> Any:
    while True:
        v = rng.between(1850, 2015) if attr == "year" else rng.choice(words(VALUES[attr]))
        if all(str(v) not in str(a) and str(a) not in str(v) for a in avoid):
            return v


def _make(world: World, kind: str, **over: Any) -> Entity:
    return getattr(world, kind)(**over)


def plan_synthetic_qa(ctx: TaskContext) -> Plan:
    p = ctx.params
    world = World(ctx.rng.child("world"))
    rng_q = ctx.rng.child("question")
    gold: list[Entity] = []
    confusers: list[Entity] = []
    if p["hops"] == 1:
        kind, attr, text, answer_of = rng_q.choice(SINGLE)
        subject = _make(world, kind)
        gold.append(subject)
        world.reserved.add(subject["name"])
        values = [subject[attr]]
        for _ in range(p["confusing_facts"]):
            v = _other_value(rng_q, attr, values)
            values.append(v)
            confusers.append(_make(world, kind, name=world.near_duplicate(subject["name"]), **{attr: v}))
        answer = answer_of(subject[attr])
        question = text.format(s=subject["name"])
    else:
        kind, link, bridge_kind, attr, text, answer_of = rng_q.choice(DOUBLE)
        bridge = _make(world, bridge_kind)
        subject = _make(world, kind, **{link: bridge["name"]})
        gold.extend([subject, bridge])
        world.reserved.update([subject["name"], bridge["name"]])
        values = [bridge[attr]]
        for _ in range(p["confusing_facts"]):
            v = _other_value(rng_q, attr, values)
            values.append(v)
            other_bridge = _make(world, bridge_kind, name=world.near_duplicate(bridge["name"]), **{attr: v})
            twin = _make(world, kind, name=world.near_duplicate(subject["name"]), **{link: other_bridge["name"]})
            confusers.extend([twin, other_bridge])
        answer = answer_of(bridge[attr])
        question = text.format(s=subject["name"])

    rng_depth = ctx.rng.child("depth")
    depths = rng_depth.sample([d for d in DEPTH_GRID if d != p["depth_percent"]], len(gold) + len(confusers))
    if p["depth_percent"] is not None:
        depths[0] = p["depth_percent"]
    inserts = [
        Insert(render(e), d, "", {"role": "gold" if i < len(gold) else "confusing", "entity": e["name"]})
        for i, (e, d) in enumerate(zip(gold + confusers, depths, strict=True))
    ]

    rng_hay = ctx.rng.child("haystack")
    hay_world = World(rng_hay)
    hay_world.used = world.used  # distractor subjects never reuse a name from the question's world
    hay_world.reserved = world.reserved | set(world.used)

    def distractors(want: int) -> list[str]:
        kinds = ("person", "company", "city")
        return [render(_make(hay_world, kinds[rng_hay.below(3)])) for _ in range(want)]

    builder = HaystackBuilder(
        ctx.counter, UnitStream(ctx.counter, distractors), inserts, label=lambda i: f"\n\nDocument {i}:\n"
    )
    return Plan(
        INSTRUCTION + "\n\nThe following are given documents.",
        f"{INSTRUCTION}\n\nQuestion: {question}",
        "Answer:",
        [answer],
        builder,
        separators=("\n\n", "\n\n"),
        metadata={"depth_percent": depths[0], "hops": p["hops"], "question_subject": subject["name"]},
    )


TASKS = [
    TaskType(
        "synthetic_qa", "qa", "string_match_part", 32,
        {
            "hops": Param("int", 1, "1: one document answers; 2: a bridge entity links two", minimum=1, maximum=2),
            "confusing_facts": Param("int", 0, "near-duplicate entities with conflicting facts", minimum=0,
                                     maximum=8),
            "depth_percent": Param("depth", None, "depth of the first gold document; null samples the grid",
                                   minimum=0, maximum=100, nullable=True),
        },
        plan_synthetic_qa,
        "Questions over generated documents, one or two hops, optionally with confusing near-duplicates.",
    ),
]
