"""Externally reported results come in from lm-eval files or CSV, marked reported; a bad file saves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from leaderboard.models import Cell, LeaderboardRow, ModelEntry, Submission
from tests.factories import make_version

pytestmark = pytest.mark.django_db


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
        ("model,task,length,score\nA,niah_0,512,90\nA,nope,512,90\n", "line 3: task 'nope' is not in imp"),
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
