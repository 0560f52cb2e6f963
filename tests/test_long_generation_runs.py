"""Long generation end to end: a local fake endpoint that writes deliberately truncated replies, through the runner
to stored samples, cells, rows and pages; and the reference model writing a long reply on the CPU."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from evalworkers.backends.local import LocalBackend, LocalModelConfig, load
from evalworkers.benchmark import HFTokenCounter
from evalworkers.evaluation import CellSpec, evaluate_samples, summarize
from leaderboard import rows, versioning
from leaderboard.models import (
    BenchmarkVersion,
    Cell,
    CellStatus,
    LeaderboardRow,
    ModelKind,
    SubmissionStatus,
    TaskSpec,
)
from tests.factories import make_entry, make_submission, run_inline
from tests.fake_openai import FakeCall, FakeOpenAI

KEY = "sk-long-generation-0016"
# The asked records of a many-answers prompt, and the orders of an extraction prompt in its log format.
QUESTION = re.compile(r"^Q(\d+): (R\d+)$", re.MULTILINE)
RECORD = re.compile(r"Record (R\d+): city ([^;]+); item ([^;]+); code (\d+)\.")
ORDER = re.compile(r'order=(R\d+) city="([^"]+)" status=(\S+) qty=(\d+)$', re.MULTILINE)
STATUS = re.compile(r"status is (\w+)")
RAMBLE = "Here the list of remaining orders continues. " * 400


def truncated_reply(call: FakeCall) -> str:
    """A model that reads the context right but gives up half way: the first half of the answers, then it stops
    (many answers); the first half of the table, then prose until the token limit cuts it off (extraction)."""
    asked = QUESTION.findall(call.prompt)
    if asked:
        records = {rid: (city, item, code) for rid, city, item, code in RECORD.findall(call.prompt)}
        half = asked[: len(asked) // 2]
        return "\n".join(f"A{n}: {', '.join(records[rid])}" for n, rid in half)
    status = STATUS.search(call.prompt)
    if status is None:  # the probe's question
        return "OK"
    matching = [f"{rid}\t{city}\t{qty}" for rid, city, st, qty in ORDER.findall(call.prompt) if st == status.group(1)]
    return "id\tcity\tquantity\n" + "\n".join(matching[: len(matching) // 2]) + "\n" + RAMBLE


def long_generation_version(slug: str) -> BenchmarkVersion:
    version = BenchmarkVersion.objects.create(slug=slug, title="Long generation test", seed=16, lengths=[1024],
                                              samples_per_cell=2, kv_methods=["full"], kv_budgets=[1.0])
    for key, task_type, params in [("answers_o32", "many_answers", {"output_tokens": 32}),
                                   ("answers_o96", "many_answers", {"output_tokens": 96}),
                                   ("extract_o64", "record_extraction", {"output_tokens": 64, "format": "log"})]:
        spec = TaskSpec(version=version, key=key, task_type=task_type, params=params,
                        max_new_tokens=params["output_tokens"] + 32)
        spec.full_clean()
        spec.save()
    return versioning.publish(version)


@pytest.mark.slow  # a real HTTP server (the fake endpoint)
@pytest.mark.django_db
def test_a_truncated_reply_is_scored_per_question_and_per_row_and_shown_against_reply_length(client) -> None:
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=truncated_reply, max_model_len=32768) as server:
        version = long_generation_version("longgen-test")
        entry = make_entry(endpoint_url=server.base_url, api_model_name="fake-model", display_name="Half Writer")
        sub = run_inline(make_submission(version=version, model=entry, api_key=KEY))
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    cells = {c.task.key: c for c in sub.cells.select_related("task")}
    for key in ("answers_o32", "answers_o96"):
        cell = cells[key]
        assert cell.status == CellStatus.COMPLETED and cell.samples_errored == 0
        assert cell.finish_stop == 2 and cell.finish_length == 0  # it stopped early, on its own
        for sample in cell.samples.all():
            k = len(sample.expected)
            detail = sample.metadata["scoring"]
            assert detail["per_question"] == [1.0] * (k // 2) + [0.0] * (k - k // 2)
            assert detail["first_miss"] == k // 2 + 1 and detail["answered"] == k // 2
            assert sample.score == round(100 * (k // 2) / k, 2)
    extraction = cells["extract_o64"]
    assert extraction.finish_length == 2 and extraction.finish_stop == 0  # it ran into the token limit
    assert extraction.output_tokens_mean == 96  # the server counted the whole limit
    for sample in extraction.samples.all():
        gold, written = len(sample.expected), len(sample.expected) // 2
        recall = written / gold
        assert sample.metadata["scoring"]["precision"] == 1.0
        assert sample.score == round(100 * 2 * recall / (1 + recall), 2)  # F1 with precision 1
    assert cells["answers_o96"].samples.first().metadata["scoring"]["answered"] > \
        cells["answers_o32"].samples.first().metadata["scoring"]["answered"]

    row = LeaderboardRow.objects.get(submission=sub)
    assert row.scores_by_output == {str(n): round(cells[key].score, 2)
                                    for n, key in ((32, "answers_o32"), (64, "extract_o64"), (96, "answers_o96"))}
    rows.recompute(sub.pk)  # idempotent

    page = client.get(reverse("leaderboard:model", args=[sub.pk])).content.decode()
    assert "Reply length: long-generation tasks" in page
    assert "Score across required reply lengths" in page
    assert "score by the question" in page  # the many-answers position picture
    assert "Ran into the limit" in page and "Stopped on its own" in page
    table = page[page.index("How the replies ended"):page.index("</table>", page.index("How the replies ended"))]
    assert re.search(r"<td class=\"num\">64</td><td class=\"num\">[\d.]+</td><td class=\"num\">96</td>"
                     r"<td class=\"num warn\">2</td><td class=\"num\">0</td>", table), table
    board = client.get(reverse("leaderboard:index") + f"?version={version.slug}").content.decode()
    assert "Score across required reply lengths" in board and "Score across context lengths" in board
    listing = client.get(reverse("leaderboard:version", args=[version.slug])).content.decode()
    assert "answers_o96" in listing and "record_extraction" in listing
    preview = client.get(reverse("leaderboard:version-samples", args=[version.slug]),
                         {"task": "extract_o64", "length": 1024, "index": 0}).content.decode()
    assert "Gold reply" in preview and "id\tcity\tquantity\nR" in preview and "Row-level F1" in preview
    api = client.get(f"/api/v1/submissions/{sub.pk}").json()
    by_task = {c["task"]: c for c in api["cells"]}
    assert by_task["extract_o64"]["output_tokens"] == 64 and by_task["extract_o64"]["output_tokens_mean"] == 96
    assert by_task["extract_o64"]["finish_reasons"] == {"stop": 0, "length": 2, "other": 0}
    assert api["leaderboard_rows"][0]["scores_by_output"] == row.scores_by_output


@pytest.mark.django_db
def test_a_local_model_gets_one_reply_length_curve_per_kv_point_with_kv_bytes_after_decoding(client) -> None:
    version = long_generation_version("longgen-local")
    entry = make_entry(kind=ModelKind.HUGGINGFACE, hf_repo="reference", endpoint_url="", api_model_name="",
                       display_name="Local Writer")
    sub = make_submission(version=version, model=entry, kv_methods=["snapkv"], kv_budgets=[0.5],
                          status=SubmissionStatus.COMPLETED, finished_at=timezone.now())
    # Scores fall with the reply length, faster under SnapKV at half the cache; the cache grows while decoding.
    scores = {("full", 1.0): {"answers_o32": 90.0, "extract_o64": 70.0, "answers_o96": 50.0},
              ("snapkv", 0.5): {"answers_o32": 80.0, "extract_o64": 40.0, "answers_o96": 20.0}}
    for (method, budget), by_task in scores.items():
        for task in version.tasks.all():
            Cell.objects.create(
                submission=sub, task=task, length=1024, method=method, budget=budget, status=CellStatus.COMPLETED,
                samples_total=2, samples_done=2, score=by_task[task.key], ci_low=0.0, ci_high=100.0,
                kv_bytes=int(20e6 * budget), kv_bytes_end=int(20e6 * budget) + task.output_tokens * 23040,
                output_tokens_mean=float(task.output_tokens), finish_stop=1, finish_length=1,
                decode_tokens_per_s=9.5)
    rows.recompute(sub.pk)
    by_point = {(r.method, r.budget): r.scores_by_output for r in LeaderboardRow.objects.filter(submission=sub)}
    assert by_point == {("full", 1.0): {"32": 90.0, "64": 70.0, "96": 50.0},
                        ("snapkv", 0.5): {"32": 80.0, "64": 40.0, "96": 20.0}}
    page = client.get(reverse("leaderboard:model", args=[sub.pk])).content.decode()
    assert "Score across required reply lengths" in page
    assert '"name": "Full cache"' in page and '"name": "SnapKV' in page  # one line per KV point
    table = page[page.index("How the replies ended"):page.index("</table>", page.index("How the replies ended"))]
    # 10,000,000 + 96 x 23,040 bytes = 12,211,840 bytes = 11.6 MiB after 96 tokens under SnapKV at 50%
    assert re.search(r"SnapKV[^<]*</th><td class=\"num\">96</td><td class=\"num\">20.0</td>.*?<td class=\"num\">"
                     r"11.6</td></tr>", table), table


@pytest.mark.django_db
def test_a_version_without_long_generation_tasks_shows_no_reply_length_section(client) -> None:
    from tests.factories import make_completed, make_version

    version = make_version("plain", publish=True, lengths=[512, 1024])
    sub = make_completed(version, "Reader", {512: 90.0, 1024: 80.0})
    page = client.get(reverse("leaderboard:model", args=[sub.pk])).content.decode()
    assert "Reply length" not in page
    board = client.get(reverse("leaderboard:index") + "?version=plain").content.decode()
    assert "Score across required reply lengths" not in board


@pytest.mark.slow  # loads the reference model and decodes on the CPU
@pytest.mark.timeout(1200)  # bf16 emulated on an AVX2-only CPU is about 5x slower
def test_the_reference_model_writes_a_long_reply_with_its_stop_reason_speed_and_kv_after_decoding(
        reference_models_dir: Path) -> None:
    model = load(LocalModelConfig(source="reference", models_dir=reference_models_dir))
    counter = HFTokenCounter(model.tokenizer)
    spec = CellSpec(seed=16, task_key="write_o16", task_type="length_following",
                    params={"output_tokens": 16, "elements": 2}, length=512, max_new_tokens=32, samples=1)
    outcome = evaluate_samples(spec, LocalBackend(model, "full", 1.0), counter, range(1), concurrency=1)[0]
    assert outcome.error == "" and outcome.score is not None
    assert 1 <= outcome.output_tokens <= 32
    assert outcome.finish_reason == ("length" if outcome.output_tokens == 32 else "stop")
    assert outcome.decode_tokens_per_s > 0
    eff = outcome.efficiency
    # Decoding appends a key and a value per layer for every token but the last: the cache grows by exactly that.
    per_token = eff.kv_bytes_full // outcome.prompt_tokens
    assert eff.kv_bytes_end == eff.kv_bytes + per_token * (outcome.output_tokens - 1)
    assert outcome.metadata["scoring"]["required_words"] > 0
    summary = summarize([outcome])
    assert summary.output_tokens_mean == outcome.output_tokens
    assert summary.efficiency.kv_bytes_end == eff.kv_bytes_end


def test_the_position_picture_puts_each_question_in_its_tenth_of_the_list() -> None:
    from leaderboard.charts import POSITION_BIN_LABELS, position_grid

    samples = [{"output_tokens": 64, "per_question": [1.0, 1.0, 0.0, 0.0]},  # bins 0, 2, 5, 7 of ten
               {"output_tokens": 64, "per_question": [0.0, 1.0, 0.5, 0.0]},
               {"output_tokens": 128, "per_question": [1.0] * 20},
               {"output_tokens": 999, "per_question": [0.0]}]  # a reply length not asked for: left out
    grid = position_grid(samples, [64, 128])
    assert list(grid.columns) == [64, 128]
    column = grid[64].to_dict()
    assert column[POSITION_BIN_LABELS[0]] == 50.0 and column[POSITION_BIN_LABELS[2]] == 100.0
    assert column[POSITION_BIN_LABELS[5]] == 25.0 and column[POSITION_BIN_LABELS[7]] == 0.0
    assert grid[64].isna().sum() == 6
    assert (grid[128] == 100.0).all()
