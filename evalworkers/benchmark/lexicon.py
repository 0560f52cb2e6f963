"""Word lists shipped in ``data/`` and the random keys/values built from them."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from .rng import Rng

VALUE_TYPES = ("words", "numbers", "uuids")

_CONSONANTS = "bcdfghklmnprstvz"
_VOWELS = "aeiou"


@cache
def load_data(name: str) -> Any:
    """A JSON file from the package's data folder (read once per process)."""
    return json.loads(resources.files(__package__).joinpath("data").joinpath(name).read_text(encoding="utf-8"))


def words(kind: str) -> tuple[str, ...]:
    return tuple(load_data("words.json")[kind])


@cache
def english_words() -> tuple[str, ...]:
    """Distinct real words (nouns, adjectives, verbs), in a fixed sorted order."""
    pool = {*words("nouns"), *words("adjectives"), *words("verbs")}
    return tuple(sorted(pool))


def random_value(rng: Rng, value_type: str) -> str:
    """RULER's needle keys and values: an adjective-noun word, a 7-digit number, or a UUID."""
    if value_type == "words":
        return f"{rng.choice(words('adjectives'))}-{rng.choice(words('nouns'))}"
    if value_type == "numbers":
        return str(rng.between(1_000_000, 9_999_999))
    if value_type == "uuids":
        return rng.uuid4()
    raise ValueError(f"unknown value type {value_type!r}")


def distinct_values(rng: Rng, value_type: str, k: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """k values of one type, distinct from each other and from ``exclude``, in draw order."""
    out: list[str] = []
    seen = set(exclude)
    while len(out) < k:
        value = random_value(rng, value_type)
        if value not in seen and not any(value in s or s in value for s in seen):
            seen.add(value)
            out.append(value)
    return out


def pseudo_word(rng: Rng, syllables: int) -> str:
    """A pronounceable made-up word, used where the real word list is too short (CWE at long lengths)."""
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice("nrlst")


def person_name(rng: Rng) -> str:
    return f"{rng.choice(words('first_names'))} {rng.choice(words('last_names'))}"


_CITY_FORMS = ("{}", "{}", "{}", "New {}", "Port {}", "Upper {}", "Lower {}", "{} Falls", "{} Crossing", "East {}")


def city_name(rng: Rng) -> str:
    """About 15,000 distinct names (prefix + suffix, in ten forms)."""
    base = rng.choice(words("city_prefixes")) + rng.choice(words("city_suffixes"))
    return rng.choice(_CITY_FORMS).format(base)


def company_name(rng: Rng) -> str:
    """A surname firm or an adjective-noun brand: over a million distinct names."""
    suffix = rng.choice(words("company_suffixes"))
    if rng.below(2):
        return f"{rng.choice(words('last_names'))} {suffix}"
    return f"{rng.choice(words('adjectives')).title()} {rng.choice(words('nouns')).title()} {suffix}"
