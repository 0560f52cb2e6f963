"""Every task generates a length-exact, well-formed sample; rendering follows the options."""

import itertools
import re

import pytest

from evalworkers.benchmark import (
    TASK_TYPES,
    CalibratedCounter,
    RenderOptions,
    generate_sample,
    length_tolerance,
    score,
    validate_task_entry,
)
from evalworkers.benchmark.scoring import PREFIX_CHARS
from tests.benchmark_helpers import bpe_counter, merging_counter, versions


def make(task_type, length=2048, params=None, index=0, **kw):
    counter = kw.pop("counter", bpe_counter())
    return generate_sample(
        seed=11,
        task_key=task_type,
        task_type=task_type,
        params=params or {},
        length=length,
        index=index,
        counter=counter,
        **kw,
    )


def assert_fits(sample, counter):
    real = counter.count(sample.as_completion_prompt())
    assert real == sample.prompt_tokens
    slack = sample.length - sample.max_new_tokens - real
    assert 0 <= slack <= length_tolerance(sample.length), slack


@pytest.mark.parametrize("task_type", sorted(TASK_TYPES))
@pytest.mark.parametrize("length", [1024, 8192])
def test_every_task_type_fills_the_target_exactly(task_type, length):
    sample = make(task_type, length)
    assert_fits(sample, bpe_counter())
    assert sample.answers
    if TASK_TYPES[task_type].category == "generation":  # gold replies, not substrings: test_long_generation_tasks.py
        return
    for answer in sample.answers:
        if sample.metric == "sequence_ratio":  # MRCR: the reply is in the context, its prefix only in the question
            answer = answer[PREFIX_CHARS:]
        assert answer in sample.context or answer.lower() in sample.context.lower()
    assert score(", ".join(sample.answers), sample.answers, sample.metric) == 100.0


def test_a_tokenizer_that_merges_across_pieces_still_never_exceeds_the_target():
    counter = merging_counter()
    for task_type in ("niah_single", "niah_multikey", "common_words", "synthetic_qa"):
        sample = make(task_type, 4096, counter=counter)
        real = counter.count(sample.as_completion_prompt())
        assert real == sample.prompt_tokens
        assert 0 <= 4096 - sample.max_new_tokens - real <= length_tolerance(4096)


def test_a_calibrated_counter_sizes_by_its_own_estimate():
    counter = CalibratedCounter(4.2)
    sample = make("niah_single", 8192, params={"haystack": "prose"}, counter=counter)
    est = counter.count(sample.as_completion_prompt())
    assert 0 <= 8192 - 128 - est <= length_tolerance(8192)


def test_single_needle_template_is_singular_and_multi_value_is_plural():
    single = make("niah_single", params={"value_type": "uuids"})
    assert single.instruction.startswith("A special magic uuid is hidden")
    assert single.question.startswith("What is the special magic uuid for ")
    assert single.answer_prefix.endswith("mentioned in the provided text is")
    assert single.context.count("One of the special magic uuids for ") == 1
    multi = make("niah_multivalue")
    assert multi.instruction.startswith("Some special magic numbers are hidden")
    assert multi.answer_prefix.endswith("are")
    key = multi.metadata["queries"][0]
    assert len(re.findall(rf"One of the special magic numbers for {key} is: \d{{7}}\.", multi.context)) == 4


def test_multiquery_asks_every_key_and_expects_every_value():
    sample = make("niah_multiquery", params={"num_queries": 3})
    keys = sample.metadata["queries"]
    assert len(keys) == 3 and f"{keys[0]}, {keys[1]}, and {keys[2]}" in sample.question
    assert len(sample.answers) == 3


def test_needles_haystack_is_all_distractor_needles():
    sample = make(
        "niah_multikey", params={"haystack": "needles", "num_keys": 1, "key_type": "uuids", "value_type": "uuids"}
    )
    lines = sample.context.split("\n")
    assert all(line.startswith("One of the special magic uuids for ") for line in lines[:-1])
    assert sum(sample.answers[0] in line for line in lines) == 1


def test_given_depth_is_used_and_recorded():
    for depth in (0, 50, 100):
        sample = make("niah_single", 4096, params={"depth_percent": depth, "haystack": "prose"})
        assert sample.metadata["depth_percent"] == depth
        offset = sample.metadata["inserts"][0]["char_offset"]
        assert abs(100 * offset / len(sample.context) - depth) < 3


def test_variable_tracking_chain_is_in_order_and_every_variable_is_expected():
    sample = make("variable_tracking", 4096, params={"num_chains": 2, "num_hops": 3})
    value = sample.metadata["query"]
    names = sample.answers
    assert len(names) == 4
    assert f"VAR {names[0]} = {value}." in sample.context
    positions = [sample.context.index(f"VAR {names[i + 1]} = VAR {names[i]}.") for i in range(3)]
    assert positions == sorted(positions) and positions[0] > sample.context.index(f"VAR {names[0]} = {value}.")
    assert sample.answer_prefix.startswith("Answer: According to the chain(s) of variable assignment")


def test_ancestral_trace_asks_for_the_top_of_the_chain():
    sample = make("ancestral_trace", 4096, params={"num_generations": 4})
    chain = sample.metadata["chain"]
    assert sample.answers == [chain[0]]
    assert chain[-1] in sample.question
    for parent, child in itertools.pairwise(chain):
        assert any(parent in s and child in s for s in re.split(r"(?<=\.) ", sample.context))


def test_common_words_answers_are_the_most_frequent_items():
    sample = make("common_words", 8192)
    items = re.findall(r"\d+\. (\S+)", sample.context)
    counts = {w: items.count(w) for w in set(items)}
    top = sorted(counts.values(), reverse=True)
    assert {counts[w] for w in sample.answers} == {30}
    assert top[10] == 3
    assert [int(n) for n in re.findall(r"(\d+)\. ", sample.context)] == list(range(1, len(items) + 1))


def test_common_words_use_rulers_short_frequencies_below_4k():
    assert make("common_words", 2048).metadata["freq_cw"] == 6
    assert make("common_words", 4096).metadata["freq_cw"] == 30


def test_frequent_words_answers_are_the_three_most_frequent_after_the_dots():
    sample = make("frequent_words", 8192)
    words = sample.context.split(" ")
    counts = sorted({w: words.count(w) for w in set(words)}.items(), key=lambda kv: -kv[1])
    assert counts[0][0] == "...."
    assert sorted(w for w, _ in counts[1:4]) == sorted(sample.answers)
    assert counts[3][1] > counts[4][1]


def test_two_hop_qa_needs_both_documents_and_confusing_facts_conflict():
    sample = make("synthetic_qa", 4096, params={"hops": 2, "confusing_facts": 2})
    roles = [i["role"] for i in sample.metadata["inserts"]]
    assert roles == ["gold", "gold", "confusing", "confusing", "confusing", "confusing"]
    gold_docs = [i["entity"] for i in sample.metadata["inserts"] if i["role"] == "gold"]
    assert all(f"\n{name} " in sample.context or sample.context.startswith("Document") for name in gold_docs)
    docs = re.findall(r"Document (\d+):\n", sample.context)
    assert [int(d) for d in docs] == list(range(1, len(docs) + 1))
    assert sample.metric == "string_match_part"


def test_chat_and_completion_forms_carry_the_same_prompt():
    sample = make("niah_single", 1024, options=RenderOptions(system_prompt="You are careful."))
    messages = sample.as_messages()
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[2]["content"] == sample.answer_prefix
    assert sample.as_completion_prompt() == (
        "You are careful.\n\n" + messages[1]["content"] + " " + sample.answer_prefix
    )
    no_prefill = make("niah_single", 1024, options=RenderOptions(answer_prefill=False))
    assert [m["role"] for m in no_prefill.as_messages()] == ["user"]


def test_reasoning_drops_the_answer_prefix_and_raises_max_new_tokens():
    options = RenderOptions(reasoning=True, reasoning_extra_tokens=512)
    sample = make("niah_single", 4096, options=options)
    assert sample.answer_prefix == ""
    assert sample.max_new_tokens == 128 + 512
    assert [m["role"] for m in sample.as_messages()] == ["user"]
    assert_fits(sample, bpe_counter())


def test_reserved_tokens_are_left_free():
    sample = make("niah_single", 2048, options=RenderOptions(reserve_tokens=100))
    slack = 2048 - 128 - 100 - sample.prompt_tokens
    assert 0 <= slack <= length_tolerance(2048)


def test_smoke_version_generates_every_task_at_every_length():
    smoke = next(v for v in versions() if v["slug"] == "smoke")
    for entry in map(validate_task_entry, smoke["tasks"]):
        for length in smoke["lengths"]:
            sample = generate_sample(
                seed=smoke["seed"],
                task_key=entry["key"],
                task_type=entry["type"],
                params=entry["params"],
                length=length,
                index=0,
                counter=bpe_counter(),
                max_new_tokens=entry["max_new_tokens"],
            )
            assert_fits(sample, bpe_counter())


def test_v1_generates_every_task_at_its_shortest_length():
    v1 = next(v for v in versions() if v["slug"] == "v1")
    for entry in map(validate_task_entry, v1["tasks"]):
        sample = generate_sample(
            seed=v1["seed"],
            task_key=entry["key"],
            task_type=entry["type"],
            params=entry["params"],
            length=min(v1["lengths"]),
            index=3,
            counter=bpe_counter(),
            max_new_tokens=entry["max_new_tokens"],
        )
        assert_fits(sample, bpe_counter())
