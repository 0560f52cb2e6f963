"""Properties over random seeds, lengths and depths: fit, a single needle at its depth, gold in context,
identical re-generation."""

import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evalworkers.benchmark import CalibratedCounter, generate_sample, length_tolerance, min_length
from tests.benchmark_helpers import bpe_counter

pytestmark = pytest.mark.slow  # property tests over many generated samples

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=2**63 - 1)
lengths = st.integers(min_value=700, max_value=16_384)
depths = st.one_of(st.none(), st.integers(min_value=0, max_value=100), st.floats(min_value=0, max_value=100))
NEEDLE = "One of the special magic {type} for {key} is: {value}."


def fits(sample):
    real = bpe_counter().count(sample.as_completion_prompt())
    return real == sample.prompt_tokens and 0 <= sample.length - sample.max_new_tokens - real <= length_tolerance(
        sample.length
    )


@SETTINGS
@given(
    seed=seeds,
    length=lengths,
    depth=depths,
    index=st.integers(0, 10_000),
    haystack=st.sampled_from(["noise", "prose", "needles"]),
    value_type=st.sampled_from(["words", "numbers", "uuids"]),
)
def test_single_needle_fits_appears_once_at_its_depth_and_regenerates(seed, length, depth, index, haystack, value_type):
    kwargs = dict(
        seed=seed,
        task_key="niah",
        task_type="niah_single",
        length=length,
        index=index,
        counter=bpe_counter(),
        params={"depth_percent": depth, "haystack": haystack, "value_type": value_type},
    )
    sample = generate_sample(**kwargs)
    assert fits(sample)
    needle = sample.metadata["inserts"][0]
    sentence = NEEDLE.format(type=value_type, key=needle["key"], value=needle["value"])
    assert sample.context.count(sentence) == 1
    assert sample.context.index(sentence) == needle["char_offset"]
    if depth is not None:
        assert sample.metadata["depth_percent"] == depth
    # Placed between haystack units: the relative position is within one unit (plus the needle) of its depth.
    unit = max(len(u) for u in re.split(r"(?<=[.!?])[ \n]+", sample.context)) + len(sentence)
    at = 100 * needle["char_offset"] / len(sample.context)
    assert abs(at - sample.metadata["depth_percent"]) <= 100 * unit / len(sample.context) + 1
    assert sample.answers == [needle["value"]] and needle["value"] in sample.context
    assert generate_sample(**kwargs) == sample


@SETTINGS
@given(
    seed=seeds,
    length=lengths,
    task=st.sampled_from(
        [
            "niah_multikey",
            "niah_multivalue",
            "niah_multiquery",
            "variable_tracking",
            "ancestral_trace",
            "common_words",
            "frequent_words",
            "synthetic_qa",
        ]
    ),
    index=st.integers(0, 1000),
)
def test_every_task_fits_contains_its_gold_answers_and_regenerates(seed, length, task, index):
    kwargs = dict(
        seed=seed, task_key=task, task_type=task, params={}, length=length, index=index, counter=bpe_counter()
    )
    sample = generate_sample(**kwargs)
    assert fits(sample)
    for answer in sample.answers:
        assert answer in sample.context
    for insert in sample.metadata.get("inserts", []):
        start = insert["char_offset"]
        assert 0 <= start < len(sample.context)
    assert generate_sample(**kwargs).sha256() == sample.sha256()


@SETTINGS
@given(seed=seeds, hops=st.integers(1, 2), confusing=st.integers(0, 3), length=lengths)
def test_qa_gold_documents_appear_once(seed, hops, confusing, length):
    # Two hops with three confusing facts need about 735 tokens; a length too short is refused (tested elsewhere).
    assume(length >= 1.1 * min_length("synthetic_qa", {"hops": hops, "confusing_facts": confusing}, bpe_counter()))
    sample = generate_sample(
        seed=seed,
        task_key="qa",
        task_type="synthetic_qa",
        params={"hops": hops, "confusing_facts": confusing},
        length=length,
        index=0,
        counter=bpe_counter(),
    )
    assert fits(sample)
    for insert in sample.metadata["inserts"]:
        doc_start = sample.context[insert["char_offset"] :]
        assert doc_start.startswith(insert["entity"] + " ")
        first_sentence = doc_start.split(". ")[0]
        assert sample.context.count(first_sentence) == 1


@settings(max_examples=10, deadline=None)
@given(seed=seeds, length=lengths)
def test_needles_and_depths_do_not_depend_on_the_tokenizer(seed, length):
    # Only the amount of filler depends on the reading model's tokenizer, so models are asked the same thing.
    a, b = (
        generate_sample(
            seed=seed, task_key="mk", task_type="niah_multikey", params={}, length=length, index=0, counter=counter
        )
        for counter in (bpe_counter(), CalibratedCounter(3.0))
    )
    strip = [{k: v for k, v in i.items() if k != "char_offset"} for i in a.metadata["inserts"]]
    assert strip == [{k: v for k, v in i.items() if k != "char_offset"} for i in b.metadata["inserts"]]
    assert (a.question, a.answers) == (b.question, b.answers)
