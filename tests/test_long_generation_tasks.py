"""Long-generation tasks: deterministic, the gold reply derivable from the context and sized to the required reply
length, the gold reply scoring 100 and truncated or reordered replies earning the partial credit worked out by hand."""

from __future__ import annotations

import re

import pytest

from evalworkers.benchmark import (
    SpecError,
    default_max_new_tokens,
    generate_sample,
    min_length,
    score,
    validate_task_entry,
)
from evalworkers.benchmark.long_output import answers_in_order, length_following, length_score, row_f1
from evalworkers.benchmark.plan import new_tokens_for_output
from evalworkers.benchmark.registry import output_tokens_of
from evalworkers.benchmark.scoring import score_detail
from evalworkers.benchmark.tasks.generation import gold_reply
from tests.benchmark_helpers import bpe_counter, versions

CASES = [
    ("record_extraction", {"format": "html", "output_tokens": 64}),
    ("record_extraction", {"format": "log", "output_tokens": 256}),
    ("many_answers", {"output_tokens": 64}),
    ("many_answers", {"output_tokens": 256}),
    ("length_following", {"output_tokens": 64}),
    ("length_following", {"output_tokens": 256, "elements": 6}),
]


def make(task_type: str, params: dict, *, length: int = 2048, index: int = 0, seed: int = 5):
    return generate_sample(seed=seed, task_key=task_type, task_type=task_type, params=params, length=length,
                           index=index, counter=bpe_counter())


@pytest.mark.parametrize(("task_type", "params"), CASES)
def test_a_sample_is_deterministic_and_its_gold_reply_scores_100(task_type, params) -> None:
    sample = make(task_type, params)
    assert make(task_type, params).sha256() == sample.sha256()
    assert make(task_type, params, index=1).sha256() != sample.sha256()
    gold = gold_reply(task_type, sample.answers, sample.metadata)
    assert score(gold, sample.answers, sample.metric, sample.metadata) == 100.0
    assert score("", sample.answers, sample.metric, sample.metadata) == 0.0


@pytest.mark.parametrize(("task_type", "params"), [c for c in CASES if c[0] != "length_following"])
def test_the_gold_reply_is_sized_to_the_required_reply_length(task_type, params) -> None:
    sample = make(task_type, params)
    target = params["output_tokens"]
    gold_tokens = sample.metadata["gold_output_tokens"]
    assert gold_tokens == bpe_counter().count(gold_reply(task_type, sample.answers, sample.metadata).lstrip("\n"))
    assert 0.75 * target <= gold_tokens <= target + 8, (gold_tokens, target)  # within one line of the target
    assert sample.max_new_tokens == target + max(32, target // 4)


def test_a_longer_required_reply_asks_for_more_rows_questions_and_words() -> None:
    sizes = {t: [len(make(t, {"output_tokens": o}, length=8192).answers) for o in (64, 256, 1024)]
             for t in ("record_extraction", "many_answers")}
    for counts in sizes.values():
        assert counts[0] < counts[1] < counts[2], sizes
    words = [make("length_following", {"output_tokens": o}).metadata["required_words"] for o in (64, 256, 1024)]
    assert words[0] < words[1] < words[2]
    assert 0.5 < words[2] / 1024 < 1.0  # English prose: about 0.75 words a token


RECORD_LINE = {
    "html": re.compile(r"<tr> <td>(R\d+)</td> <td>([^<]+)</td> <td>([^<]+)</td> <td>(\d+)</td> </tr>"),
    "log": re.compile(r'order=(R\d+) city="([^"]+)" status=(\S+) qty=(\d+)$'),
}


@pytest.mark.parametrize("fmt", ["html", "log"])
def test_the_extraction_gold_is_every_matching_row_of_the_context_in_order(fmt) -> None:
    sample = make("record_extraction", {"format": fmt, "output_tokens": 128}, length=3000)
    status = sample.metadata["status"]
    assert f"status is {status}" in sample.question
    parsed = [RECORD_LINE[fmt].search(line) for line in sample.context.splitlines()]
    records = [m.groups() for m in parsed if m]
    assert len(records) >= len(sample.context.splitlines()) - 1  # every line is a record (the last may be cut)
    derived = [f"{rid}\t{city}\t{qty}" for rid, city, st, qty in records if st == status]
    assert derived == sample.answers
    assert len({r[0] for r in records}) == len(records)  # ids are unique


def test_the_many_answers_gold_is_looked_up_in_the_context_for_each_listed_id() -> None:
    sample = make("many_answers", {"output_tokens": 128}, length=3000)
    asked = re.findall(r"^Q(\d+): (R\d+)$", sample.question, re.MULTILINE)
    assert [int(n) for n, _ in asked] == list(range(1, len(sample.answers) + 1))
    for (_, rid), expected in zip(asked, sample.answers, strict=True):
        found = re.search(rf"Record {rid}: city ([^;]+); item ([^;]+); code (\d+)\.", sample.context)
        assert found is not None, rid
        assert " | ".join(found.groups()) == expected
    depths = [i["char_offset"] for i in sample.metadata["inserts"]]
    assert depths != sorted(depths)  # the register is not in the order asked: answering means looking up


def test_the_length_following_elements_are_the_notes_of_the_context_by_paragraph() -> None:
    sample = make("length_following", {"output_tokens": 128, "elements": 5}, length=3000)
    notes = dict(re.findall(r'Writing note (\d+): paragraph \1 of the essay must use the word "(\w+)"',
                            sample.context))
    assert [notes[str(j)] for j in range(1, 6)] == sample.answers
    assert f"about {sample.metadata['required_words']} words" in sample.question
    assert "exactly 5 paragraphs" in sample.question


# --- scoring by hand --------------------------------------------------------------------------------------------------

GOLD_ROWS = [f"R10000{i}\tCity {i}\t{i * 7}" for i in range(10)]
HEADER = "id\tcity\tquantity\n"


def test_row_f1_by_hand_truncated_reordered_and_padded() -> None:
    columns = ["id", "city", "quantity"]
    assert row_f1(HEADER + "\n".join(GOLD_ROWS), GOLD_ROWS, columns).score == 100.0
    half = row_f1(HEADER + "\n".join(GOLD_ROWS[:5]), GOLD_ROWS, columns)  # P = 1, R = 1/2: F1 = 2/3
    assert half.score == 66.67 and half.detail["precision"] == 1.0 and half.detail["recall"] == 0.5
    assert row_f1("\n".join(reversed(GOLD_ROWS)), GOLD_ROWS, columns).score == 100.0  # order does not matter
    wrong = ["R999999\tNowhere\t1", "R100001\tCity 1\t8"]  # an unknown order; a right order with a wrong quantity
    padded = row_f1(HEADER + "\n".join(GOLD_ROWS[:5] + wrong), GOLD_ROWS, columns)  # P = 5/7, R = 1/2: F1 = 10/17
    assert padded.score == 58.82
    cut = HEADER + "\n".join(GOLD_ROWS[:4]) + "\nR100004\tCi"  # a cut-off last line is not a row
    assert row_f1(cut, GOLD_ROWS, columns).detail["predicted_rows"] == 4
    twice = row_f1("\n".join(GOLD_ROWS[:5] * 2), GOLD_ROWS, columns)  # a repeated row counts once
    assert twice.detail["matched_rows"] == 5 and twice.detail["precision"] == 0.5


def test_row_f1_normalises_cells_as_longproc_does_and_reads_a_markdown_table() -> None:
    gold = ["R100001\tPort Tarnwick\t15"]
    columns = ["id", "city", "quantity"]
    assert row_f1("r100001\tport-tarnwick.\t15", gold, columns).score == 100.0
    assert row_f1("| id | city | quantity |\n|---|---|---|\n| R100001 | Port Tarnwick | 15 |", gold,
                  columns).score == 100.0


def test_many_answers_by_hand_per_question_with_positions() -> None:
    gold = ["Oslo | lamp | 1234", "Rome | kettle | 2345", "Lima | drum | 3456", "Kyiv | vase | 4567"]
    reply = "A1: Oslo, lamp, 1234\nA2: Rome, kettle, 2345\nA3: Lima, drum, 9999\n"
    scored = answers_in_order(reply, gold)  # (1 + 1 + 2/3 + 0) / 4
    assert scored.score == 66.67
    assert scored.detail["per_question"] == [1.0, 1.0, 0.6667, 0.0]
    assert scored.detail["first_miss"] == 3 and scored.detail["answered"] == 3
    assert scored.detail["answer_offsets"] == [0, reply.index("A2"), reply.index("A3"), None]
    swapped = "A2: Rome, kettle, 2345\nA1: Oslo, lamp, 1234\nA4: Kyiv, vase, 4567\nA3: Lima, drum, 3456"
    assert answers_in_order(swapped, gold).score == 100.0  # each answer is checked against its own question
    unlabelled = "Oslo, lamp, 1234\nRome, kettle, 2345"
    assert answers_in_order(unlabelled, gold).score == 0.0


def test_longwriter_length_score_by_hand() -> None:
    assert length_score(100, 100) == 100.0
    assert length_score(100, 50) == 50.0  # 1 - (100/50 - 1) / 2
    assert length_score(100, 200) == pytest.approx(66.667, abs=1e-3)  # 1 - (200/100 - 1) / 3
    assert length_score(100, 400) == 0.0
    assert length_score(100, 25) == 0.0  # 1 - (4 - 1) / 2 < 0
    assert length_score(100, 0) == 0.0
    with pytest.raises(ValueError):
        length_score(0, 10)


def test_length_following_by_hand_truncated_and_reordered() -> None:
    elements = ["vorplex", "quandle", "mirtash", "zembol"]
    metadata = {"required_words": 200}
    gold = gold_reply("length_following", elements, metadata)
    assert score_detail(gold, elements, "length_following", metadata).score == 100.0
    paragraphs = gold.split("\n\n")
    truncated = length_following("\n\n".join(paragraphs[:2]), elements, 200)  # 100 words, 2 of 4 in order
    assert truncated.score == 50.0  # 0.5 * 50 + 0.25 * 50 + 0.25 * 50
    reordered = length_following("\n\n".join(reversed(paragraphs)), elements, 200)
    assert reordered.detail["presence"] == 1.0 and reordered.detail["order"] == 0.25
    assert reordered.detail["placed"] == 0.0
    assert reordered.score == 81.25  # 0.5 * 100 + 0.25 * 100 + 0.25 * 25


def test_a_long_reply_is_scored_on_its_final_answer_not_its_reasoning() -> None:
    gold = ["Oslo | lamp | 1234"]
    assert score("<think>A1: Oslo, lamp, 1234</think>\nA1: Bergen", gold, "answers_in_order") == 0.0
    assert score("<think>A1: Bergen</think>\nA1: Oslo, lamp, 1234", gold, "answers_in_order") == 100.0


# --- specs ------------------------------------------------------------------------------------------------------------

def test_the_token_limit_derives_from_the_required_reply_and_may_not_cut_it() -> None:
    params = {"output_tokens": 2048}
    assert output_tokens_of("many_answers", params) == 2048
    assert default_max_new_tokens("many_answers", params) == new_tokens_for_output(2048) == 2560
    assert default_max_new_tokens("niah_single") == 128
    assert output_tokens_of("niah_single", {}) is None
    entry = validate_task_entry({"key": "answers_o2k", "type": "many_answers", "params": params})
    assert entry["max_new_tokens"] == 2560
    with pytest.raises(SpecError) as exc:
        validate_task_entry({"key": "a", "type": "many_answers", "params": params, "max_new_tokens": 1000})
    assert exc.value.field == "max_new_tokens" and "2048" in str(exc.value)


def test_the_long_generation_versions_give_each_reply_length_every_task_type_and_fit_their_lengths() -> None:
    by_slug = {v["slug"]: v for v in versions()}
    expected = {"longgen-smoke": [32, 64, 128], "longgen-v1": [512, 1024, 2048, 4096, 8192]}
    for slug, outputs in expected.items():
        version = by_slug[slug]
        entries = [validate_task_entry(t) for t in version["tasks"]]
        grid = {(e["type"], output_tokens_of(e["type"], e["params"])) for e in entries}
        assert grid == {(t, o) for t in ("record_extraction", "many_answers", "length_following") for o in outputs}
        for entry in entries:
            need = min_length(entry["type"], entry["params"], bpe_counter(), entry["max_new_tokens"])
            assert need <= version["lengths"][0], (slug, entry["key"], need)
    slugs = list(by_slug)  # added after the earlier versions: their hashes are unchanged
    assert slugs.index("longgen-smoke") > slugs.index("smoke") and slugs.index("longgen-v1") > slugs.index("smoke")
