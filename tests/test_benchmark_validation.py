"""Task specs are validated with errors that name the field; registry facts follow RULER."""

import pytest

from evalworkers.benchmark import (
    TASK_TYPES,
    RenderOptions,
    SpecError,
    category_of,
    default_max_new_tokens,
    generate_sample,
    metric_of,
    min_length,
    validate_task,
    validate_task_entry,
)
from tests.benchmark_helpers import bpe_counter, versions


def test_registry_holds_every_task_type():
    assert set(TASK_TYPES) == {
        "niah_single",
        "niah_multikey",
        "niah_multivalue",
        "niah_multiquery",
        "mixed_shared_context",
        "variable_tracking",
        "ancestral_trace",
        "common_words",
        "frequent_words",
        "synthetic_qa",
        "mrcr",
        "needle_threading",
        "non_literal_needle",
        "record_extraction",
        "many_answers",
        "length_following",
    }


def test_categories_metrics_and_generation_lengths_follow_ruler():
    assert category_of("niah_single") == "retrieval"
    assert category_of("variable_tracking") == category_of("ancestral_trace") == "tracing"
    assert category_of("common_words") == category_of("frequent_words") == "aggregation"
    assert category_of("synthetic_qa") == "qa"
    assert category_of("mrcr") == category_of("non_literal_needle") == "retrieval"
    assert category_of("needle_threading") == "tracing"
    assert metric_of("synthetic_qa") == "string_match_part"
    assert metric_of("mrcr") == "sequence_ratio"  # OpenAI MRCR's grade
    reading = [t for t in TASK_TYPES if category_of(t) != "generation"]
    assert {metric_of(t) for t in reading if t not in ("synthetic_qa", "mrcr")} == {"string_match_all"}
    assert [
        default_max_new_tokens(t)
        for t in ("niah_single", "variable_tracking", "common_words", "frequent_words", "synthetic_qa")
    ] == [128, 30, 120, 50, 32]


def test_defaults_are_filled_in_and_keys_sorted():
    params = validate_task("niah_single", {"value_type": "uuids"})
    assert params == {"depth_percent": None, "haystack": "noise", "key_type": "words", "value_type": "uuids"}
    assert list(params) == sorted(params)


def test_unknown_value_type_names_the_field_and_the_choices():
    with pytest.raises(SpecError) as exc:
        validate_task("niah_single", {"value_type": "foo"})
    assert exc.value.field == "params.value_type"
    assert str(exc.value) == "params.value_type: unknown value type 'foo'; choose one of words, numbers, uuids"


@pytest.mark.parametrize(
    ("task_type", "params", "field"),
    [
        ("niah_sngle", {}, "type"),
        ("niah_single", {"haystak": "noise"}, "params.haystak"),
        ("niah_single", {"depth_percent": 101}, "params.depth_percent"),
        ("niah_single", {"depth_percent": "middle"}, "params.depth_percent"),
        ("niah_multikey", {"num_keys": 0}, "params.num_keys"),
        ("niah_multikey", {"num_keys": 1, "haystack": "prose"}, "params.num_keys"),
        ("variable_tracking", {"num_hops": 2.5}, "params.num_hops"),
        ("common_words", {"freq_cw": 3, "freq_ucw": 3}, "params.freq_ucw"),
        ("frequent_words", {"alpha": True}, "params.alpha"),
        ("synthetic_qa", {"hops": 3}, "params.hops"),
    ],
)
def test_bad_params_raise_spec_errors_naming_the_field(task_type, params, field):
    with pytest.raises(SpecError) as exc:
        validate_task(task_type, params)
    assert exc.value.field == field
    assert str(exc.value).startswith(field + ": ")


@pytest.mark.parametrize("length", [0, -4096, 2.5, True])
def test_non_positive_or_non_integer_length_is_rejected(length):
    with pytest.raises(SpecError) as exc:
        generate_sample(
            seed=1, task_key="k", task_type="niah_single", params={}, length=length, index=0, counter=bpe_counter()
        )
    assert exc.value.field == "length"


def test_length_too_short_for_the_template_is_rejected_with_the_minimum():
    counter = bpe_counter()
    need = min_length("niah_single", {}, counter)
    with pytest.raises(SpecError) as exc:
        generate_sample(seed=1, task_key="k", task_type="niah_single", params={}, length=200, index=0, counter=counter)
    assert exc.value.field == "length"
    assert "needs at least" in exc.value.message
    assert need > 200
    generate_sample(
        seed=1, task_key="k", task_type="niah_single", params={}, length=need + 10, index=0, counter=counter
    )


def test_reasoning_raises_the_minimum_length_by_the_extra_tokens():
    counter = bpe_counter()
    plain = min_length("variable_tracking", {}, counter)
    thinking = min_length("variable_tracking", {}, counter, options=RenderOptions(reasoning=True))
    assert 1024 - 80 < thinking - plain < 1024  # 1024 more new tokens, minus the dropped answer prefix


def test_task_entries_are_normalised_and_checked():
    entry = validate_task_entry({"key": "vt", "type": "variable_tracking", "params": {"num_hops": 2}})
    assert entry == {
        "key": "vt",
        "type": "variable_tracking",
        "max_new_tokens": 30,
        "weight": 1.0,
        "params": {"haystack": "noise", "num_chains": 1, "num_hops": 2},
    }
    for bad, field in [
        ({"key": "a b", "type": "variable_tracking"}, "key"),
        ({"key": "vt", "type": "variable_tracking", "max_new_tokens": 0}, "max_new_tokens"),
        ({"key": "vt", "type": "variable_tracking", "weight": -1}, "weight"),
    ]:
        with pytest.raises(SpecError) as exc:
            validate_task_entry(bad)
        assert exc.value.field == field


def test_every_version_task_entry_is_valid_and_keys_are_unique():
    for version in versions():
        keys = [validate_task_entry(t)["key"] for t in version["tasks"]]
        assert len(keys) == len(set(keys)) > 0


def test_v1_configures_rulers_thirteen_tasks_plus_ancestral_trace():
    v1 = next(v for v in versions() if v["slug"] == "v1")
    keys = [t["key"] for t in v1["tasks"]]
    assert keys == [
        "niah_single_1",
        "niah_single_2",
        "niah_single_3",
        "niah_multikey_1",
        "niah_multikey_2",
        "niah_multikey_3",
        "niah_multivalue",
        "niah_multiquery",
        "vt",
        "cwe",
        "fwe",
        "qa_1",
        "qa_2",
        "ancestral_trace",
    ]
    by_key = {t["key"]: validate_task_entry(t) for t in v1["tasks"]}
    mk3 = by_key["niah_multikey_3"]["params"]
    assert mk3["key_type"] == mk3["value_type"] == "uuids"
    assert by_key["fwe"]["params"]["alpha"] == 2.0
    assert by_key["vt"]["params"]["num_hops"] == 4
