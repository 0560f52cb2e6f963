"""Tasks under RULER's names are generated as RULER generates them; v1's published templates stay as they were."""

from __future__ import annotations

import html
import re
from io import StringIO

import pytest
from django.core.management import call_command

from evalworkers.benchmark import generate_sample, length_tolerance, validate_task, validate_task_entry
from evalworkers.benchmark.ruler import RULER_TASKS, standing
from evalworkers.benchmark.tasks.aggregation import CWE_INSTRUCTION
from evalworkers.benchmark.tasks.tracing import VT_EXAMPLE_TOKENS, VT_INSTRUCTION
from tests.benchmark_helpers import bpe_counter, versions

RULER = {"template": "ruler"}


def make(task_type: str, params: dict, length: int, index: int = 0, max_new: int | None = None):
    return generate_sample(seed=11, task_key=task_type, task_type=task_type, params=params, length=length,
                           index=index, counter=bpe_counter(), max_new_tokens=max_new)


def version(slug: str) -> dict:
    return next(v for v in versions() if v["slug"] == slug)


def test_the_template_parameter_is_left_out_of_params_at_its_v1_default_so_published_specs_keep_their_hash():
    for task_type in ("variable_tracking", "common_words", "frequent_words"):
        assert "template" not in validate_task(task_type, {})
        assert "template" not in validate_task(task_type, {"template": "v1"})
        assert validate_task(task_type, RULER)["template"] == "ruler"


def test_v1_variable_tracking_is_rendered_as_published_without_an_example():
    sample = make("variable_tracking", {}, 2048)
    assert sample.instruction == VT_INSTRUCTION
    assert "template" not in sample.metadata
    assert re.search(r"VAR [A-Z]{5} = \d{5}\.", sample.context)


def test_rulers_vt_opens_with_a_worked_example_of_three_letter_variables_and_its_answer():
    sample = make("variable_tracking", RULER, 2048)
    example, instruction = sample.instruction.rsplit("\n\n", 1)
    assert instruction == VT_INSTRUCTION
    assert example.startswith(VT_INSTRUCTION + "\n\n")
    chain = re.findall(r"VAR ([A-Z]{3}) = (?:VAR ([A-Z]{3})|(\d{5}))", example)
    assert len(chain) == 5
    answer = example.rsplit("they are:", 1)[1].split()
    assert answer == [name for name, _, _ in chain]
    value = chain[0][2]
    assert f"assigned the value {value}, they are:" in example
    assert bpe_counter().count(example.rsplit(" ", 5)[0]) <= VT_EXAMPLE_TOKENS


def test_rulers_vt_statements_are_bare_lines_in_the_noise_in_chain_order():
    sample = make("variable_tracking", RULER, 4096, index=2)
    lines = sample.context.split("\n")
    statements = [line for line in lines if line.startswith("VAR ")]
    assert len(statements) == 5
    assert re.fullmatch(r"VAR [A-Z]{5} = \d{5}", statements[0])
    assert all(re.fullmatch(r"VAR [A-Z]{5} = VAR [A-Z]{5} ", s) for s in statements[1:])
    names = [s.split()[1] for s in statements]
    assert names == sample.answers


def test_the_length_budget_holds_the_example_the_prompt_and_the_new_tokens():
    for task_type, max_new in (("variable_tracking", 30), ("common_words", 120), ("frequent_words", 50)):
        for length in (1024, 4096):
            sample = make(task_type, RULER, length, max_new=max_new)
            whole = bpe_counter().count(sample.as_completion_prompt())
            assert whole == sample.prompt_tokens
            assert length - max_new - length_tolerance(length) <= whole <= length - max_new


def test_rulers_cwe_opens_with_an_example_of_its_own_size_below_and_from_4k():
    for length, items in ((2048, 40), (4096, 190)):
        sample = make("common_words", RULER, length)
        example, instruction = sample.instruction.rsplit("\n", 1)
        assert instruction == CWE_INSTRUCTION
        listed = re.findall(r"\d+\. ([a-z]+)", example.split("\n")[1])
        assert len(listed) == items
        answer = re.findall(r"\d+\. ([a-z]+)", example.rsplit("are:", 1)[1])
        assert len(answer) == 10 and not set(answer) & set(sample.answers)
        counts = {w: listed.count(w) for w in answer}
        assert min(counts.values()) > max(listed.count(w) for w in set(listed) - set(answer))


def test_rulers_fwe_writes_three_dots_and_sizes_its_vocabulary_by_the_length():
    sample = make("frequent_words", {**RULER, "vocab_size": None}, 4096)
    words = sample.context.split()
    assert "..." in words and "...." not in words
    assert sample.metadata["vocab_size"] == 4096 // 50
    assert max(words.count(w) for w in sample.answers) < words.count("...")
    assert "...." in make("frequent_words", {}, 4096).context.split()


def test_every_task_of_v2_under_a_ruler_name_is_rulers_task():
    v2 = version("v2")
    seen = set()
    for entry in map(validate_task_entry, v2["tasks"]):
        verdict = standing(entry["key"], entry["type"], entry["params"], entry["max_new_tokens"])
        assert verdict.kind in ("ruler", "ours"), (entry["key"], verdict.reason)
        if verdict.kind == "ruler":
            seen.add(entry["key"])
    assert seen == {"niah_single_1", "niah_multikey_2", "niah_multikey_3", "vt", "cwe", "fwe"}


def test_v1s_tasks_are_told_apart_rulers_or_not_and_why():
    by_key = {e["key"]: e for e in map(validate_task_entry, version("v1")["tasks"])}

    def verdict(key: str):
        e = by_key[key]
        return standing(key, e["type"], e["params"], e["max_new_tokens"])

    assert verdict("niah_single_1").kind == "ruler"
    assert verdict("niah_multikey_3").kind == "ruler"
    assert verdict("vt").kind == "differs" and "in-context example" in verdict("vt").reason
    assert verdict("niah_single_2").kind == "differs" and "essays" in verdict("niah_single_2").reason
    assert verdict("qa_2").kind == "differs" and "HotpotQA" in verdict("qa_2").reason
    assert verdict("ancestral_trace").kind == "ours"
    assert set(RULER_TASKS) <= set(by_key)


def test_a_ruler_name_with_other_parameters_or_new_tokens_is_not_rulers_task():
    params = validate_task("niah_single", {"haystack": "noise", "value_type": "uuids"})
    assert standing("niah_single_1", "niah_single", params, 128).kind == "differs"
    params = validate_task("niah_single", {"haystack": "noise"})
    assert standing("niah_single_1", "niah_single", params, 64).kind == "differs"
    assert standing("niah_single_1", "niah_single", params, 128).kind == "ruler"


@pytest.mark.django_db
def test_the_version_page_says_which_tasks_are_rulers(client):
    call_command("seed_versions", stdout=StringIO(), stderr=StringIO())
    v2 = html.unescape(client.get("/versions/v2/").content.decode())
    assert v2.count('<td class="ruler-ruler">RULER\'s task</td>') == 6
    assert "not RULER's task" not in v2
    v1 = html.unescape(client.get("/versions/v1/").content.decode())
    assert "RULER's name, not RULER's task: generated prose stands in for RULER's Paul Graham essays" in v1
    assert "RULER's name, not RULER's task: v1's templates" in v1
