"""Scoring matches RULER's string_match_all / string_match_part on hand-built predictions."""

import pytest

from evalworkers.benchmark import extract_answer, score, string_match_all, string_match_part

VALUES = ["4835748", "2800440", "8932836", "1631253"]


def test_all_found_scores_100():
    assert string_match_all("The numbers are 4835748, 2800440, 8932836 and 1631253.", VALUES) == 100.0


def test_partial_answer_scores_the_fraction_found():
    assert string_match_all("4835748 and 2800440", VALUES) == 50.0
    assert string_match_all("only 8932836", VALUES) == 25.0
    assert string_match_all("a, b, c", ["a", "b", "x"]) == 66.67


def test_wrong_and_empty_predictions_score_zero():
    assert string_match_all("1234567", VALUES) == 0.0
    assert string_match_all("", VALUES) == 0.0
    assert string_match_part("", ["Paris"]) == 0.0


def test_matching_ignores_case():
    assert string_match_all("the words are KITE and Acorn", ["kite", "acorn"]) == 100.0
    assert string_match_part("PARIS", ["paris"]) == 100.0


def test_part_scores_100_when_any_answer_is_found():
    assert string_match_part("It is Lyon, I think.", ["Paris", "Lyon"]) == 100.0
    assert string_match_part("Marseille", ["Paris", "Lyon"]) == 0.0


def test_closed_thinking_is_stripped_before_scoring():
    pred = "<think>Maybe 1234567? No, 4835748 is a trap.</think> The answer is 2800440."
    assert string_match_all(pred, ["4835748"]) == 0.0
    assert string_match_all(pred, ["2800440"]) == 100.0
    assert extract_answer(pred).answer == "The answer is 2800440."


def test_unfinished_thinking_counts_as_no_answer():
    assert string_match_part("<think>the answer is Paris, but let me check", ["Paris"]) == 0.0


def test_text_after_a_lone_closing_tag_is_the_answer():
    # Templates that open <think> in the prompt leave only the closing tag in the output.
    assert string_match_part("Paris is tempting... </think>Lyon", ["Paris"]) == 0.0
    assert string_match_part("Paris is tempting... </think>Lyon", ["Lyon"]) == 100.0


def test_control_characters_become_separators_not_matches():
    # RULER turns \x00-\x1f into newlines: an answer split by one is not found, one around them is.
    assert string_match_all("48357\x0048", ["4835748"]) == 0.0
    assert string_match_all("\x02\x034835748\x1f", ["4835748"]) == 100.0


def test_score_dispatches_on_the_metric_name():
    assert score("4835748", VALUES, "string_match_all") == 25.0
    assert score("4835748", VALUES, "string_match_part") == 100.0
    with pytest.raises(ValueError, match="unknown metric"):
        score("x", ["x"], "exact")
