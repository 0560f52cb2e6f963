"""CSV downloads and the read-only JSON API serve the same numbers as the pages, and never a secret."""

from __future__ import annotations

import csv
import io
import json

import pytest

from leaderboard.models import LeaderboardRow, SampleResult
from tests.factories import make_completed, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    from leaderboard import versioning

    v = make_version("exp", publish=True, tasks=2, lengths=[512, 1024])
    versioning.make_default(v)
    return v


def test_the_csv_holds_the_filtered_table(client, version) -> None:
    make_completed(version, "Alpha", {512: 90, 1024: 70})
    make_completed(version, "=HYPERLINK(\"http://evil\")", {512: 50, 1024: 40})
    response = client.get("/leaderboard.csv?q=alpha")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["model"] for r in rows] == ["Alpha"]
    assert float(rows[0]["score_512"]) == 90 and float(rows[0]["average"]) == 80
    everything = list(csv.DictReader(io.StringIO(client.get("/leaderboard.csv").content.decode())))
    assert {r["model"] for r in everything} == {"Alpha", "'=HYPERLINK(\"http://evil\")"}  # no formula injection


def test_per_sample_results_download_for_a_completed_submission(client, version) -> None:
    sub = make_completed(version, "Alpha", {512: 90, 1024: 70})
    cell = sub.cells.first()
    SampleResult.objects.create(cell=cell, index=3, prediction="7", expected=["7"], score=100.0,
                                metadata={"depth_percent": 40}, finish_reason="stop", answer_found_by="think",
                                reasoning_chars=120)
    SampleResult.objects.create(cell=cell, index=4, prediction="", expected=["8"], score=0.0,
                                finish_reason="length", answer_outcome="cut_off_while_reasoning",
                                answer_found_by="field:reasoning_content", reasoning_chars=900, reasoning_tokens=250)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/models/{sub.pk}/samples.csv").getvalue().decode())))
    common = {"task": cell.task.key, "length": str(cell.length), "method": "full", "budget": "1.0", "error": "",
              "prompt_tokens": "", "output_tokens": "", "latency_s": "", "turn": "1"}
    assert rows == [
        {**common, "index": "3", "score": "100.0", "expected": "7", "prediction": "7", "answer_outcome": "answered",
         "answer_found_by": "think", "finish_reason": "stop", "reasoning_chars": "120", "reasoning_tokens": "",
         "depth_percent": "40"},
        {**common, "index": "4", "score": "0.0", "expected": "8", "prediction": "",
         "answer_outcome": "cut_off_while_reasoning", "answer_found_by": "field:reasoning_content",
         "finish_reason": "length", "reasoning_chars": "900", "reasoning_tokens": "250", "depth_percent": ""}]


def test_the_json_api_lists_versions_leaderboard_and_submission_detail(client, version) -> None:
    sub = make_completed(version, "Alpha", {512: 90, 1024: 70})
    versions = client.get("/api/v1/versions").json()["versions"]
    assert versions[0]["slug"] == "exp" and versions[0]["spec_hash"] == version.spec_hash
    board = client.get("/api/v1/leaderboard").json()
    row = board["rows"][0]
    assert row["model"] == "Alpha" and row["scores_by_length"] == {"512": 90.0, "1024": 70.0}
    assert row["effective_length"] == 512 and row["rank"] == 1
    detail = client.get(f"/api/v1/submissions/{sub.pk}").json()
    assert len(detail["cells"]) == 4 and detail["leaderboard_rows"][0]["id"] == LeaderboardRow.objects.get().pk
    assert client.get("/api/v1/leaderboard?version=missing").status_code == 404


def test_no_api_response_or_export_contains_an_api_key(client, version) -> None:
    secret = "sk-secret-never-shown-4242"
    sub = make_completed(version, "Keyed", {512: 90, 1024: 70})
    sub.status = "running"
    sub.set_api_key(secret)
    sub.save()
    for url in ("/api/v1/versions", "/api/v1/leaderboard", f"/api/v1/submissions/{sub.pk}", "/leaderboard.csv",
                "/", "/status/"):
        body = client.get(url).content.decode()
        assert secret not in body and sub.api_key_encrypted not in body, url


def test_the_openapi_description_names_every_endpoint(client) -> None:
    spec = json.loads(client.get("/api/v1/openapi.json").content)
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/api/v1/versions", "/api/v1/leaderboard", "/api/v1/submissions/{submission_id}",
                                  "/leaderboard.csv"}
    for path in spec["paths"]:
        if "{" not in path:
            assert client.get(path).status_code in (200, 404), path


def test_the_api_says_what_is_missing_in_json_and_lists_its_endpoints(client, version) -> None:
    missing = client.get("/api/v1/submissions/999999")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    unknown = client.get("/api/v1/leaderboard?version=nope")
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    index = client.get("/api/v1/").json()
    assert "/api/v1/leaderboard" in index["endpoints"].values() and index["submission"] == "/api/v1/submissions/{id}"
