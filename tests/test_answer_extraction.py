"""Only a reply's final answer is scored: every known reasoning format is separated from it first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evalworkers.benchmark import AnswerOutcome, extract_answer, score

NEEDLE, DECOY = "4417302", "9921840"

# (format, how a model wraps its reasoning around a final answer), one per supported format.
WRAPPERS = {
    "think": lambda r, a: f"<think>{r}</think>{a}",
    "thinking": lambda r, a: f"<thinking>{r}</thinking>\n{a}",
    "reasoning": lambda r, a: f"<reasoning>{r}</reasoning> {a}",
    "think_brackets": lambda r, a: f"[THINK]{r}[/THINK]{a}",
    "seed_think": lambda r, a: f"<seed:think>{r}</seed:think>{a}",
    "kimi_think": lambda r, a: f"◁think▷{r}◁/think▷{a}",
    "template_opened": lambda r, a: f"{r}</think>\n\n{a}",
    "harmony": lambda r, a: (f"<|channel|>analysis<|message|>{r}<|end|><|start|>assistant<|channel|>final"
                             f"<|message|>{a}<|return|>"),
    "harmony_plain": lambda r, a: f"analysis{r.capitalize()}assistantfinal{a}",
}


def test_bracket_think_reasoning_that_mentions_the_needle_is_not_credited() -> None:
    reply = f"[THINK]Candidates: {NEEDLE} and {DECOY}. The second one.[/THINK]{DECOY}"
    found = extract_answer(reply, finish_reason="stop")
    assert found.answer == DECOY
    assert found.found_by == "think_brackets"
    assert score(found.answer, [NEEDLE], "string_match_part") == 0.0
    assert score(found.answer, [DECOY], "string_match_part") == 100.0


@pytest.mark.parametrize("fmt", sorted(WRAPPERS))
def test_each_format_yields_the_final_answer_and_the_reasoning_length(fmt: str) -> None:
    reasoning = f"maybe {NEEDLE}, or rather"
    found = extract_answer(WRAPPERS[fmt](reasoning, DECOY), finish_reason="stop")
    assert found.outcome is AnswerOutcome.ANSWERED
    assert found.answer == DECOY
    assert found.reasoning_chars >= len(reasoning) - 1
    assert found.found_by != "plain"


@pytest.mark.parametrize("reply", [
    f"<think>The value is {NEEDLE}, but let me check the other",
    f"[THINK]The value is {NEEDLE}",
    f"<|channel|>analysis<|message|>The value is {NEEDLE}",
    f"analysisThe value is {NEEDLE} and",
])
def test_a_block_cut_off_by_the_token_limit_has_no_final_answer(reply: str) -> None:
    found = extract_answer(reply, finish_reason="length")
    assert found.outcome is AnswerOutcome.CUT_OFF_WHILE_REASONING
    assert found.answer == ""
    assert found.outcome.label == "no final answer: stopped while reasoning"


def test_a_reasoning_field_with_null_content_cut_off_on_length_has_no_final_answer() -> None:
    found = extract_answer(None, reasoning_field=f"It is {NEEDLE}", reasoning_field_name="reasoning_content",
                           finish_reason="length")
    assert found.outcome is AnswerOutcome.CUT_OFF_WHILE_REASONING
    assert found.found_by == "field:reasoning_content"


def test_a_reasoning_field_beside_the_content_is_never_scored() -> None:
    found = extract_answer(DECOY, reasoning_field=f"It is {NEEDLE}?", reasoning_field_name="reasoning",
                           finish_reason="stop")
    assert (found.answer, found.reasoning_chars, found.found_by) == (DECOY, len(f"It is {NEEDLE}?"),
                                                                     "field:reasoning")


def test_a_misfired_reasoning_parser_keeps_the_answer_and_says_so() -> None:
    # The server put the whole reply in reasoning_content and stopped on its own: the answer is there.
    found = extract_answer(None, reasoning_field=f"Checking.</think>{NEEDLE}", reasoning_field_name="reasoning_content",
                           finish_reason="stop")
    assert found.answer == NEEDLE
    assert found.found_by == "field:reasoning_content+recovered"
    assert extract_answer("", reasoning_field=NEEDLE, reasoning_field_name="reasoning",
                          finish_reason="stop").answer == NEEDLE


def test_plain_answers_are_untouched_even_when_they_start_with_a_channel_word() -> None:
    for reply in (f"Analysis: {NEEDLE}", f"analysis of the text gives {NEEDLE}", f"The number is {NEEDLE}."):
        found = extract_answer(reply, finish_reason="stop")
        assert (found.answer, found.found_by, found.reasoning_chars) == (reply, "plain", 0)


def test_an_empty_reply_and_a_closed_block_with_nothing_after_it_are_named_as_empty() -> None:
    assert extract_answer("", finish_reason="stop").outcome is AnswerOutcome.EMPTY
    assert extract_answer("<think>done</think>  ", finish_reason="stop").outcome is AnswerOutcome.EMPTY


_values = st.text(alphabet="0123456789", min_size=7, max_size=7)
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,.:", max_size=40)


@given(answer=_values, decoys=st.lists(_values, min_size=1, max_size=4), filler=_words,
       fmt=st.sampled_from(sorted(WRAPPERS)), metric=st.sampled_from(["string_match_part", "string_match_all"]))
def test_wrapping_reasoning_in_any_format_never_changes_the_score_of_the_final_answer(
        answer: str, decoys: list[str], filler: str, fmt: str, metric: str) -> None:
    reasoning = filler + " " + " ".join(decoys) + " " + filler
    wrapped = WRAPPERS[fmt](reasoning, answer)
    for expected in ([answer], decoys, [decoys[0], answer]):
        bare = score(answer, expected, metric)
        assert score(extract_answer(wrapped, finish_reason="stop").answer, expected, metric) == bare
        assert score(wrapped, expected, metric) == bare  # scoring a raw reply extracts first, too
