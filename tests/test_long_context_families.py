"""The families past literal needles: MRCR-style coreference, needle threading and non-literal (NoLiMa-style)
needles. Each is deterministic, has exactly one gold answer per asked item, keeps its promises (no shared content
word, threads that lead where the answer says) and fits its length; MRCR's sequence ratio scores as MRCR does."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalworkers.benchmark import SpecError, generate_sample, length_tolerance, score, validate_task
from evalworkers.benchmark.scoring import PREFIX_CHARS
from evalworkers.benchmark.tasks import association, coreference, threads
from tests.benchmark_helpers import bpe_counter

PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINK = re.compile(r"The thread at ([0-9a-f-]{36}) continues at ([0-9a-f-]{36})\.")


def make(task_type: str, params: dict, *, seed: int = 5, length: int = 4096, index: int = 0):
    return generate_sample(seed=seed, task_key=task_type, task_type=task_type, params=params, length=length,
                           index=index, counter=bpe_counter())


def fits(sample) -> bool:
    real = bpe_counter().count(sample.as_completion_prompt())
    slack = sample.length - sample.max_new_tokens - real
    return real == sample.prompt_tokens and 0 <= slack <= length_tolerance(sample.length)


# --- MRCR ------------------------------------------------------------------------------------------------

def check_mrcr(sample, needles: int) -> None:
    meta = sample.metadata
    request = coreference.request(meta["kind"], meta["subject"])
    assert sample.context.count(f"User: {request}\n") == needles
    assert request in sample.question and meta["prefix"] in sample.question
    assert sample.answer_prefix == "" and len(sample.answers) == 1
    gold = sample.answers[0]
    assert gold[:PREFIX_CHARS] == meta["prefix"] and meta["prefix"] not in sample.context
    reply = gold[PREFIX_CHARS:]
    assert sample.context.count(reply) == 1
    # The gold reply is the asked occurrence: the n-th time the request is answered, counting from the start.
    replies = re.findall(rf"User: {re.escape(request)}\nAssistant: (.*?)(?=\n\nUser: |\Z)", sample.context, re.S)
    assert len(replies) == needles and replies[meta["occurrence"] - 1] == reply
    assert len(set(replies)) == needles
    assert fits(sample)


@pytest.mark.parametrize("needles", [1, 2, 4, 8])
def test_mrcr_asks_for_one_of_several_replies_to_the_same_request_and_it_occurs_once(needles) -> None:
    sample = make("mrcr", {"num_needles": needles}, length=8192, index=needles)
    check_mrcr(sample, needles)
    assert make("mrcr", {"num_needles": needles}, length=8192, index=needles) == sample


def test_mrcr_fillers_never_repeat_the_asked_request_but_do_share_its_kind_or_subject() -> None:
    sample = make("mrcr", {"num_needles": 2}, length=32768, index=3)
    kind, subject = sample.metadata["kind"], sample.metadata["subject"]
    requests = re.findall(r"^User: Write (.+?) about the (\w+)\.$", sample.context, re.M)
    asked = [r for r in requests if r == (coreference.KINDS[kind], subject)]
    assert len(asked) == 2
    assert any(k == coreference.KINDS[kind] for k, s in requests if s != subject)
    assert len({k for k, _ in requests}) == len(coreference.KINDS)


def test_mrcr_scores_by_sequence_ratio_after_the_prefix_and_zero_without_it() -> None:
    sample = make("mrcr", {"num_needles": 4}, index=1)
    gold = sample.answers[0]
    prefix, reply = gold[:PREFIX_CHARS], gold[PREFIX_CHARS:]
    assert score(gold, sample.answers, "sequence_ratio") == 100.0
    assert score(f"  {gold}\n", sample.answers, "sequence_ratio") == 100.0
    assert score(reply, sample.answers, "sequence_ratio") == 0.0  # the reply alone, without the prefix
    assert score(prefix.lower() + reply, sample.answers, "sequence_ratio") == 0.0
    other = make("mrcr", {"num_needles": 4}, index=2).answers[0][PREFIX_CHARS:]
    expected = round(100 * SequenceMatcher(None, other, reply).ratio(), 2)
    assert 0 < score(prefix + other, sample.answers, "sequence_ratio") == expected < 100
    half = reply[: len(reply) // 2]
    assert score(prefix + half, sample.answers, "sequence_ratio") == round(
        100 * SequenceMatcher(None, half, reply).ratio(), 2)
    # Only the final answer counts: the right reply inside reasoning, then a wrong one, scores as the wrong one.
    thought = f"<think>{gold}</think>{prefix}{other}"
    assert score(thought, sample.answers, "sequence_ratio") == expected


def test_mrcr_content_comes_from_a_fixed_bank_identical_in_every_process() -> None:
    bank = coreference.bank()
    assert len(bank) == coreference.BANK_TURNS
    assert bank[0][2].startswith("User: Write ")
    assert bank == coreference.bank.__wrapped__()


# --- needle threading ------------------------------------------------------------------------------------

def follow(context: str, start: str) -> tuple[str, list[int]]:
    """Walk the links in the text from ``start``; the end key and where each link was found."""
    links = {a: (b, m.start()) for m in LINK.finditer(context) for a, b in [m.groups()]}
    at, offsets = start, []
    while at in links:
        at, offset = links[at]
        offsets.append(offset)
    return at, offsets


def check_threads(sample, params: dict) -> None:
    starts = sample.metadata["starts"]
    assert len(sample.answers) == len(starts)
    for start, end in zip(starts, sample.answers, strict=True):
        assert start in sample.question
        reached, offsets = follow(sample.context, start)
        assert reached == end and len(offsets) == params.get("thread_length", 4)
        assert sample.context.count(end) == 1 and end not in sample.question
        if params.get("direction", "forward") == "forward":
            assert offsets == sorted(offsets)
        elif params.get("direction") == "backward":
            assert offsets == sorted(offsets, reverse=True)
    every_link = LINK.findall(sample.context)
    assert len({a for a, _ in every_link}) == len(every_link)  # a key continues in one place at most
    assert fits(sample)


@pytest.mark.parametrize("params", [
    {},
    {"num_threads": 4, "thread_length": 6},
    {"num_threads": 3, "follow": "all", "direction": "backward"},
    {"num_threads": 2, "follow": "all", "direction": "random", "haystack": "links"},
    {"thread_length": 1, "haystack": "noise"},
])
def test_a_thread_followed_through_the_text_ends_at_the_expected_key(params) -> None:
    sample = make("needle_threading", params, length=8192, index=7)
    check_threads(sample, params)
    assert sample.metric == "string_match_all"  # as RULER's vt
    assert make("needle_threading", params, length=8192, index=7) == sample


def test_following_every_thread_gives_partial_credit_per_thread_like_vt() -> None:
    sample = make("needle_threading", {"num_threads": 4, "follow": "all"}, index=2)
    answers = sample.answers
    assert len(answers) == 4 and len(set(answers)) == 4
    assert score(" ".join(answers), answers, "string_match_all") == 100.0
    assert score(" ".join(answers[:3]), answers, "string_match_all") == 75.0
    assert score(sample.metadata["starts"][0], answers, "string_match_all") == 0.0


def test_following_every_thread_needs_more_than_one_thread() -> None:
    with pytest.raises(SpecError) as exc:
        validate_task("needle_threading", {"num_threads": 1, "follow": "all"})
    assert exc.value.field == "params.num_threads"


# --- non-literal needles ---------------------------------------------------------------------------------

def check_needle(sample) -> None:
    meta = sample.metadata
    name = sample.answers[0]
    assert sample.answers == [name] and sample.context.count(name) == 1
    assert meta["needle"] in sample.context and name in meta["needle"]
    question_words = association.content_words(sample.question)
    needle_words = association.content_words(meta["needle"]) - {name.lower()}
    if meta["variant"] == "non_literal":
        assert not needle_words & question_words
        assert meta["cue"] in meta["needle"] and meta["target"] not in sample.context
        assert meta["target"] in sample.question and meta["cue"] not in sample.question
    else:
        assert association.content_words(meta["target"]) <= needle_words & question_words
    assert fits(sample)


@pytest.mark.parametrize("variant", ["non_literal", "literal"])
@pytest.mark.parametrize("haystack", ["prose", "noise"])
def test_a_non_literal_needle_shares_no_content_word_with_its_question_and_the_control_does(variant, haystack):
    for index in range(6):
        sample = make("non_literal_needle", {"variant": variant, "haystack": haystack}, index=index)
        check_needle(sample)


def test_every_association_pairs_a_cue_with_a_target_it_does_not_name() -> None:
    table = association.table()
    assert len(table["pairs"]) >= 30
    question_words = association.content_words(table["question"].format(target=""))
    for cue, target in table["pairs"]:
        assert not association.content_words(target) & association.content_words(cue), cue
        for template in table["needles"]:
            needle = association.content_words(template.format(name="", cue=cue))
            assert not needle & (question_words | association.content_words(target)), (template, cue)
    assert len({t for _, t in table["pairs"]}) == len(table["pairs"])


def test_a_needle_at_a_given_depth_lands_there() -> None:
    sample = make("non_literal_needle", {"depth_percent": 0}, length=8192)
    assert sample.context.startswith(sample.metadata["needle"])
    late = make("non_literal_needle", {"depth_percent": 100}, length=8192)
    assert late.context.index(late.metadata["needle"]) > 0.95 * len(late.context)


# --- the sample preview -------------------------------------------------------------------------------

@pytest.mark.parametrize(("task_type", "params", "labels"), [
    ("mrcr", {"num_needles": 2}, {"reply 1 to the repeated request", "reply 2 to the repeated request"}),
    ("needle_threading", {"thread_length": 2}, {"thread 1, link 1", "thread 1, link 2"}),
    ("non_literal_needle", {}, None),
])
def test_the_preview_marks_each_inserted_piece_with_what_it_is(task_type, params, labels) -> None:
    from evalworkers.benchmark.preview import context_segments

    sample = generate_sample(seed=5, task_key="k", task_type=task_type, params=params, length=4096, index=1,
                             counter=bpe_counter())
    segments = context_segments(sample, seed=5, counter=bpe_counter())
    assert "".join(s.text for s in segments) == sample.context
    found = [s.label for s in segments if s.kind == "insert"]
    if task_type == "mrcr":
        asked = sample.metadata["occurrence"]
        assert {f.removesuffix(", asked") for f in found} == labels
        assert [f.endswith(", asked") for f in found] == [i + 1 == asked for i in range(2)]
    elif labels is not None:
        assert set(found) == labels
    else:
        meta = sample.metadata
        assert found == [f"needle: {sample.answers[0]} ({meta['cue']}, in {meta['target']})"]


# --- properties over random seeds and lengths (slow: many generated samples) ----------------------------

seeds = st.integers(min_value=0, max_value=2**63 - 1)
lengths = st.integers(min_value=2048, max_value=24_576)


@pytest.mark.slow
@PROPERTY
@given(seed=seeds, length=lengths, needles=st.sampled_from([2, 4, 8]), index=st.integers(0, 10_000))
def test_mrcr_properties_hold_for_any_seed_and_length(seed, length, needles, index) -> None:
    sample = make("mrcr", {"num_needles": needles}, seed=seed, length=length, index=index)
    check_mrcr(sample, needles)
    assert make("mrcr", {"num_needles": needles}, seed=seed, length=length, index=index) == sample


@pytest.mark.slow
@PROPERTY
@given(seed=seeds, length=lengths, n=st.integers(2, 5), hops=st.integers(1, 6),
       follow_mode=st.sampled_from(["one", "all"]), direction=st.sampled_from(threads.DIRECTIONS),
       haystack=st.sampled_from(["noise", "prose", "links"]))
def test_threading_properties_hold_for_any_seed_and_length(seed, length, n, hops, follow_mode, direction,
                                                           haystack) -> None:
    params = {"num_threads": n, "thread_length": hops, "follow": follow_mode, "direction": direction,
              "haystack": haystack}
    sample = make("needle_threading", params, seed=seed, length=length)
    check_threads(sample, params)
    assert make("needle_threading", params, seed=seed, length=length) == sample


@pytest.mark.slow
@PROPERTY
@given(seed=seeds, length=lengths, variant=st.sampled_from(association.VARIANTS),
       haystack=st.sampled_from(["noise", "prose"]), index=st.integers(0, 10_000))
def test_non_literal_needle_properties_hold_for_any_seed_and_length(seed, length, variant, haystack, index) -> None:
    params = {"variant": variant, "haystack": haystack}
    sample = make("non_literal_needle", params, seed=seed, length=length, index=index)
    check_needle(sample)
    assert make("non_literal_needle", params, seed=seed, length=length, index=index) == sample


# --- the literal / non-literal gap on a model's page ------------------------------------------------------

def gap_version(slug: str, variants: tuple[str, ...]):
    from leaderboard import versioning
    from leaderboard.models import TaskSpec
    from tests.factories import make_version

    version = make_version(slug, lengths=[4096, 1 << 20], samples_per_cell=10)
    for variant in variants:
        TaskSpec.objects.create(version=version, key=f"nolima_{variant}", task_type="non_literal_needle",
                                params={"variant": variant}, max_new_tokens=32)
    return versioning.publish(version)


@pytest.mark.django_db
def test_a_models_page_shows_the_gap_between_literal_and_non_literal_needles_at_each_length(client) -> None:
    from django.urls import reverse

    from tests.factories import make_completed

    version = gap_version("gap", ("literal", "non_literal"))
    sub = make_completed(version, "Gapped", {4096: 50.0, 1 << 20: 50.0}, task_scores={
        "nolima_literal": {4096: 98.0, 1 << 20: 90.0}, "nolima_non_literal": {4096: 95.5, 1 << 20: 40.0}})
    page = client.get(reverse("leaderboard:model", args=[sub.pk])).content.decode()
    table = page[page.index('class="compact literal-gap"'):]
    table = table[: table.index("</table>")]
    cells = re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", table)
    assert cells[-8:] == ["4K", "98.0", "95.5", "2.5", "1M", "90.0", "40.0", "50.0"]
    assert "Literal needle (nolima_literal)" in table and "Gap (points)" in table


@pytest.mark.django_db
def test_a_version_without_both_variants_shows_no_gap(client) -> None:
    from django.urls import reverse

    from tests.factories import make_completed

    version = gap_version("nogap", ("non_literal",))
    sub = make_completed(version, "Alone", {4096: 50.0, 1 << 20: 40.0})
    page = client.get(reverse("leaderboard:model", args=[sub.pk])).content.decode()
    assert "literal-gap" not in page and "Non-literal needle" not in page
