"""Externally reported results come in from lm-eval files or CSV, marked reported; a bad file saves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from leaderboard.models import Cell, LeaderboardRow, ModelEntry, Submission
from tests.factories import make_version

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # slow: imports whole result files


@pytest.fixture
def version():
    return make_version("imp", publish=True, tasks=2, lengths=[512, 1024])


def lm_eval_file(tmp_path: Path, results: dict) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": results, "config": {"model": "hf"}}))
    return path


def test_an_lm_eval_file_becomes_a_reported_entry_with_rows(tmp_path, version) -> None:
    path = lm_eval_file(tmp_path, {
        "niah_0": {"alias": "niah_0", "512,none": 1.0, "512_stderr,none": "N/A", "1024,none": 0.5},
        "niah_1": {"alias": "niah_1", "512,none": 0.9, "1024,none": 0.7},
        "ruler": {"512,none": 0.95, "1024,none": 0.6},  # the group row: not a task of the version
    })
    call_command("import_results", str(path), "--version", "imp", "--model", "Paper-Model-7B",
                 "--source", "Table 3 of the paper")
    entry = ModelEntry.objects.get(display_name="Paper-Model-7B")
    assert entry.kind == "reported"
    row = LeaderboardRow.objects.get(submission__model=entry)
    assert row.model_kind == "reported"
    assert row.scores_by_length == {"512": 95.0, "1024": 60.0}  # fractions read as percentages


def test_minus_one_means_not_run_and_leaves_a_gap(tmp_path, version) -> None:
    path = lm_eval_file(tmp_path, {"niah_0": {"512,none": 80.0, "1024,none": -1},
                                   "niah_1": {"512,none": 70.0, "1024,none": -1}})
    call_command("import_results", str(path), "--version", "imp", "--model", "Short-Window")
    row = LeaderboardRow.objects.get()
    assert row.scores_by_length == {"512": 75.0, "1024": None}
    assert row.average is None and not row.complete
    assert Cell.objects.count() == 2


def test_a_csv_imports_several_models(tmp_path, version) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("model,task,length,score\nA,niah_0,512,90\nA,niah_1,512,80\nB,niah_0,1024,40\n")
    call_command("import_results", str(path), "--version", "imp")
    assert set(ModelEntry.objects.values_list("display_name", flat=True)) == {"A", "B"}
    assert LeaderboardRow.objects.get(model_name="A").scores_by_length["512"] == 85.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("model,task,len,score\n", "line 1: expected the header model,task,length,score"),
        ("model,task,length,score\nA,niah_0,4k,90\n", "line 2: length '4k' is not a whole number"),
        ("model,task,length,score\nA,niah_0,512,90\nA,nope,512,90\n", "1 task(s) not in imp: 'nope' (line 3)"),
        ("model,task,length,score\nA,niah_0,2048,90\n", "line 2: length 2048 is not one of imp's lengths"),
        ("model,task,length,score\nA,niah_0,512,120\n", "line 2: score 120 is outside 0-100"),
        ("model,task,length,score\nA,niah_0,512,90\nA,niah_0,512,91\n", "line 3: A / niah_0 / 512 appears twice"),
    ],
)
def test_a_bad_csv_names_the_line_and_saves_nothing(tmp_path, version, content, message) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CommandError, match="Nothing was imported") as err:
        call_command("import_results", str(path), "--version", "imp")
    assert message in str(err.value)
    assert not ModelEntry.objects.exists() and not Submission.objects.exists()


def test_a_bad_lm_eval_value_names_the_key(tmp_path, version) -> None:
    path = lm_eval_file(tmp_path, {"niah_0": {"512,none": "high"}})
    with pytest.raises(CommandError) as err:
        call_command("import_results", str(path), "--version", "imp", "--model", "X")
    assert 'results.niah_0["512,none"]: score \'high\' is not a number' in str(err.value)
    assert not ModelEntry.objects.exists()


def test_staff_upload_a_file_in_admin(client, charlie, version) -> None:
    client.force_login(charlie)
    upload = SimpleUploadedFile("scores.csv", b"model,task,length,score\nUploaded,niah_0,512,66\n")
    response = client.post("/admin/leaderboard/submission/import/",
                           {"version": version.pk, "file": upload, "source": "vendor blog"}, follow=True)
    assert "Imported 1 reported model(s) into imp" in response.content.decode()
    assert LeaderboardRow.objects.get().model_name == "Uploaded"
    bad = SimpleUploadedFile("scores.csv", b"model,task,length,score\nX,niah_0,512,abc\n")
    response = client.post("/admin/leaderboard/submission/import/", {"version": version.pk, "file": bad})
    assert "line 2: score &#x27;abc&#x27; is not a number" in response.content.decode()
    assert ModelEntry.objects.count() == 1


def test_reported_rows_carry_a_badge_on_the_leaderboard(client, tmp_path, version) -> None:
    from leaderboard import versioning

    versioning.make_default(version)
    path = tmp_path / "scores.csv"
    path.write_text("model,task,length,score\nR,niah_0,512,90\nR,niah_1,512,90\nR,niah_0,1024,90\nR,niah_1,1024,90\n")
    call_command("import_results", str(path), "--version", "imp")
    body = client.get("/").content.decode()
    assert 'badge kind-reported">Reported</span>' in body


# --- keeping faith with the file: lm-eval's names, unknown tasks, re-imports, partial grids ----------------

LM_EVAL_RULER = ["niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
                 "niah_multikey_3", "niah_multiquery", "niah_multivalue", "ruler_vt", "ruler_cwe", "ruler_fwe",
                 "ruler_qa_squad", "ruler_qa_hotpot"]  # lm_eval/tasks/ruler/ruler.yaml
V1_LENGTHS = [4096, 8192, 16384, 32768, 65536, 131072]


@pytest.fixture
def v1():
    from io import StringIO

    from leaderboard.models import BenchmarkVersion

    call_command("seed_versions", stdout=StringIO())
    return BenchmarkVersion.objects.get(slug="v1")


def lm_eval_results(scores: dict[str, float], lengths: list[int] = V1_LENGTHS) -> dict:
    """Shaped as lm-eval writes it: the group row, aliases and stderr keys beside each "<length>,none"."""
    results = {"ruler": {"alias": "ruler", **{f"{n},none": 0.5 for n in lengths}}}
    for task, score in scores.items():
        results[task] = {"alias": f" - {task}", **{f"{n},none": score for n in lengths},
                         **{f"{n}_stderr,none": "N/A" for n in lengths}}
    return results


def test_all_13_ruler_tasks_under_lm_evals_names_import_as_13_tasks(tmp_path, v1) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": lm_eval_results({t: 0.9 for t in LM_EVAL_RULER}),
                                "group_subtasks": {"ruler": LM_EVAL_RULER}}))
    call_command("import_results", str(path), "--version", "v1", "--model", "All-Thirteen")
    sub = Submission.objects.get(model__display_name="All-Thirteen")
    keys = set(sub.cells.values_list("task__key", flat=True))
    assert keys == {"niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
                    "niah_multikey_3", "niah_multiquery", "niah_multivalue", "vt", "cwe", "fwe", "qa_1", "qa_2"}
    assert sub.cells.count() == 13 * 6
    row = LeaderboardRow.objects.get(submission=sub)
    assert row.scores_by_length["4096"] == pytest.approx(90.0)
    # v1 has a 14th task (ancestral_trace) that RULER does not: the row says so instead of guessing.
    assert row.partial_reason == "78 of 84 cells of the grid measured" and row.effective_length is None


def test_a_three_task_file_scores_its_zero_and_shows_as_partial_not_below_the_shortest(client, tmp_path, v1) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": lm_eval_results(
        {"niah_single_1": 1.0, "niah_single_2": 0.995, "ruler_vt": 0.0}, lengths=[4096])}))
    call_command("import_results", str(path), "--version", "v1", "--model", "Three-Tasks")
    row = LeaderboardRow.objects.get(model_name="Three-Tasks")
    assert row.scores_by_length["4096"] == pytest.approx(66.5)  # ruler_vt's 0 counts; it was 99.8 without it
    assert row.effective_length is None and row.average is None and row.is_partial
    body = client.get("/?version=v1").content.decode()
    assert ">partial</span>" in body and "3 of 84 cells of the grid measured" in body
    assert "&lt; shortest" not in body
    (api_row,) = client.get("/api/v1/leaderboard?version=v1").json()["rows"]
    assert api_row["partial"] is True and api_row["effective_length"] is None
    page = client.get(f"/models/{row.submission_id}/").content.decode()
    assert "Partial:" in page and "below the shortest length" not in page


def test_unknown_task_names_are_refused_each_by_name_and_nothing_is_saved(tmp_path, v1) -> None:
    path = tmp_path / "results.json"
    results = lm_eval_results({"niah_single_1": 1.0, "ruler_foo": 0.5}, lengths=[4096])
    results["hellaswag"] = {"acc,none": 0.5}
    path.write_text(json.dumps({"results": results}))
    with pytest.raises(CommandError, match="Nothing was imported") as err:
        call_command("import_results", str(path), "--version", "v1", "--model", "X")
    assert "2 task(s) not in v1: 'ruler_foo' (results.ruler_foo), 'hellaswag' (results.hellaswag)" in str(err.value)
    assert "--skip-unknown" in str(err.value)
    assert not Submission.objects.filter(model__display_name="X").exists()


def test_skip_unknown_imports_the_rest_and_marks_the_row_partial(tmp_path, v1) -> None:
    path = tmp_path / "results.json"
    known = {t: 0.95 for t in LM_EVAL_RULER}
    path.write_text(json.dumps({"results": lm_eval_results({**known, "ruler_foo": 0.1})}))
    call_command("import_results", str(path), "--version", "v1", "--model", "Skipper", "--skip-unknown")
    sub = Submission.objects.get(model__display_name="Skipper")
    assert sub.import_skipped == ["ruler_foo"] and sub.cells.count() == 78
    row = LeaderboardRow.objects.get(submission=sub)
    assert row.is_partial and "tasks of the imported file skipped: ruler_foo" in row.partial_reason


def test_a_csv_may_use_lm_evals_names_and_refuses_a_task_given_under_both(tmp_path, v1) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("model,task,length,score\nC,ruler_qa_squad,4096,70\nC,vt,4096,40\n")
    call_command("import_results", str(path), "--version", "v1")
    assert set(Cell.objects.values_list("task__key", flat=True)) == {"qa_1", "vt"}
    both = tmp_path / "both.csv"
    both.write_text("model,task,length,score\nD,vt,4096,40\nD,ruler_vt,4096,40\n")
    with pytest.raises(CommandError, match="D / vt / 4096 appears twice"):
        call_command("import_results", str(both), "--version", "v1")


def test_the_same_file_imported_twice_is_refused_even_under_another_model_name(tmp_path, version) -> None:
    path = lm_eval_file(tmp_path, {"niah_0": {"512,none": 1.0}, "niah_1": {"512,none": 0.5}})
    call_command("import_results", str(path), "--version", "imp", "--model", "Once")
    with pytest.raises(CommandError, match="this file was already imported into imp") as err:
        call_command("import_results", str(path), "--version", "imp", "--model", "Twice")
    assert f"submission #{Submission.objects.get().pk}, Once" in str(err.value)
    assert Submission.objects.count() == 1 and LeaderboardRow.objects.count() == 1


def test_the_same_model_on_the_same_version_is_refused_unless_replaced(tmp_path, version) -> None:
    first = lm_eval_file(tmp_path, {"niah_0": {"512,none": 1.0}, "niah_1": {"512,none": 0.5}})
    call_command("import_results", str(first), "--version", "imp", "--model", "Paper-7B")
    second = tmp_path / "corrected.json"
    second.write_text(json.dumps({"results": {"niah_0": {"512,none": 0.8}, "niah_1": {"512,none": 0.6}}}))
    with pytest.raises(CommandError, match="already imported into imp: Paper-7B"):
        call_command("import_results", str(second), "--version", "imp", "--model", "paper-7b")
    call_command("import_results", str(second), "--version", "imp", "--model", "Paper-7B", "--replace")
    row = LeaderboardRow.objects.get()
    assert row.scores_by_length["512"] == pytest.approx(70.0)
    assert ModelEntry.objects.count() == 1 and Submission.objects.count() == 1


def test_staff_see_a_re_import_refused_and_can_skip_unknown_tasks_in_admin(client, charlie, version) -> None:
    client.force_login(charlie)
    content = b"model,task,length,score\nU,niah_0,512,66\nU,ruler_cwe,512,10\n"
    refused = client.post("/admin/leaderboard/submission/import/",
                          {"version": version.pk, "file": SimpleUploadedFile("s.csv", content)})
    assert "1 task(s) not in imp: &#x27;ruler_cwe&#x27; (line 3)" in refused.content.decode()
    done = client.post("/admin/leaderboard/submission/import/",
                       {"version": version.pk, "file": SimpleUploadedFile("s.csv", content), "skip_unknown": "on"},
                       follow=True)
    assert "Skipped ruler_cwe: the row is marked partial" in done.content.decode()
    again = client.post("/admin/leaderboard/submission/import/",
                        {"version": version.pk, "file": SimpleUploadedFile("s.csv", content), "skip_unknown": "on"})
    assert "this file was already imported into imp" in again.content.decode()
    assert Submission.objects.count() == 1
