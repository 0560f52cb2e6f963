"""A submission's status page and its JSON poll: plain words, queue place, ETA, progress, reasons, privacy."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from leaderboard import progress
from leaderboard.models import (
    Cell,
    CellStatus,
    SampleResult,
    Submission,
    SubmissionStatus,
    Visibility,
    WorkerHeartbeat,
)
from tests.factories import make_completed, make_default_version, make_entry, make_submission

pytestmark = pytest.mark.django_db
PRIVATE_KEYS = {"failure_reason", "probe", "api_key_stored"}


@pytest.fixture
def version():
    return make_default_version("t1", lengths=[512, 1024], samples_per_cell=4)


@pytest.fixture
def api_worker(db) -> WorkerHeartbeat:
    """A live worker on the endpoints' queue: without one, the page says it waits for a worker, not an ETA."""
    return WorkerHeartbeat.objects.create(worker="api@test", queue="api", seen_at=timezone.now())


def mine(version, alice, **fields) -> Submission:
    entry = make_entry(endpoint_url="http://10.9.8.7:8000/v1", api_model_name="secret-internal-name")
    return make_submission(version=version, submitter=alice, model=entry, **fields)


def poll(client, sub: Submission) -> dict:
    response = client.get(f"/submissions/{sub.pk}/progress.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return json.loads(response.content)


def with_cells(sub: Submission, done: tuple[int, ...], statuses: tuple[str, ...] | None = None) -> list[Cell]:
    task = sub.version.tasks.first()
    cells = []
    for i, n in enumerate(done):
        status = statuses[i] if statuses else CellStatus.RUNNING
        cells.append(Cell.objects.create(submission=sub, task=task, length=sub.version.lengths[i], status=status,
                                         samples_total=4, samples_done=n))
    Submission.objects.filter(pk=sub.pk).update(cells_total=len(cells), samples_total=4 * len(cells))
    return cells


def test_a_queued_submission_says_where_it_is_in_the_queue(client, alice, version, api_worker) -> None:
    others = [make_submission(version=version) for _ in range(2)]
    sub = mine(version, alice)
    later = make_submission(version=version)
    client.force_login(alice)
    data = poll(client, sub)
    assert data["status"] == "queued" and data["queue_position"] == 2
    assert "2 submissions are ahead of it" in data["explanation"]
    assert data["eta"] == {"seconds": None, "text": "unknown: no comparable submission has finished yet"}
    page = client.get(f"/submissions/{sub.pk}/").content.decode()
    assert "Place in the queue: <strong id=\"queue-position\">3</strong>" in page
    assert poll(client, later)["queue_position"] == 3 and others


def test_the_eta_comes_from_recent_completed_runs(client, alice, version, api_worker) -> None:
    now = timezone.now()
    for minutes in (10, 20, 30):
        done = make_completed(version, f"done-{minutes}", {512: 90, 1024: 80})
        Submission.objects.filter(pk=done.pk).update(started_at=now - timedelta(minutes=minutes), finished_at=now)
    make_submission(version=version)  # one ahead
    sub = mine(version, alice)
    data = progress.snapshot(sub, "owner", now=now)
    assert data["eta"]["seconds"] == 2 * 20 * 60  # the median run, for the one ahead and this one
    assert data["eta"]["text"].startswith("about 40 minutes")


def test_a_running_submission_shows_progress_per_cell_and_overall(client, alice, version, api_worker) -> None:
    sub = mine(version, alice, status=SubmissionStatus.RUNNING)
    Submission.objects.filter(pk=sub.pk).update(started_at=timezone.now() - timedelta(seconds=60))
    sub.refresh_from_db()
    cells = with_cells(sub, (4, 2), (CellStatus.COMPLETED, CellStatus.RUNNING))
    client.force_login(alice)
    data = poll(client, sub)
    assert (data["samples_done"], data["samples_total"], data["percent"]) == (6, 8, 75.0)
    assert (data["cells_done"], data["cells_total"]) == (1, 2)
    assert [(c["id"], c["done"], c["total"], c["status"]) for c in data["cells"]] == [
        (cells[0].pk, 4, 4, "completed"), (cells[1].pk, 2, 4, "running")]
    assert 15 <= data["eta"]["seconds"] <= 25 and "at the current pace" in data["eta"]["text"]
    page = client.get(f"/submissions/{sub.pk}/").content.decode()
    assert '<progress id="overall" max="8" value="6">' in page
    assert f'data-cell-id="{cells[1].pk}"' in page and '<progress max="4" value="2">' in page
    assert 'data-progress-url="/submissions/' in page and "js/submission-status" in page


def test_the_poll_follows_the_cells_as_they_move(client, alice, version) -> None:
    sub = mine(version, alice, status=SubmissionStatus.RUNNING)
    cells = with_cells(sub, (0, 0))
    client.force_login(alice)
    assert poll(client, sub)["samples_done"] == 0
    Cell.objects.filter(pk=cells[0].pk).update(samples_done=3, samples_errored=1)
    data = poll(client, sub)
    assert data["samples_done"] == 3 and data["samples_errored"] == 1 and data["cells"][0]["errored"] == 1


def test_a_failed_submission_shows_its_owner_the_reason_the_probe_and_the_last_error_lines(
        client, alice, bob, version) -> None:
    sub = mine(version, alice, status=SubmissionStatus.RUNNING)
    failed, _ok = with_cells(sub, (4, 4), (CellStatus.FAILED, CellStatus.COMPLETED))
    Cell.objects.filter(pk=failed.pk).update(error="10 consecutive samples failed; last: HTTP 500")
    for i in range(4):
        SampleResult.objects.create(cell=failed, index=i, error=f"HTTP 500 Internal Server Error #{i}")
    Submission.objects.filter(pk=sub.pk).update(
        status=SubmissionStatus.FAILED, failure_reason="niah_0 @ 512 tokens: 10 consecutive samples failed",
        probe_result={"ok": True, "code": "ok", "message": "http://10.9.8.7:8000/v1/chat/completions answered"})
    client.force_login(alice)
    data = poll(client, sub)
    assert data["failure_reason"].startswith("niah_0 @ 512 tokens")
    assert data["probe"]["code"] == "ok"
    lines = data["cells"][0]["last_errors"]
    assert lines == ["HTTP 500 Internal Server Error #3", "HTTP 500 Internal Server Error #2",
                     "HTTP 500 Internal Server Error #1"]
    page = client.get(f"/submissions/{sub.pk}/").content.decode()
    assert "Why it failed" in page and "HTTP 500 Internal Server Error #3" in page
    assert "Fix it and submit again" in page and "10.9.8.7" in page

    client.force_login(bob)  # another user sees only the public facts
    data = poll(client, sub)
    assert not PRIVATE_KEYS & set(data) and all("last_errors" not in c and "error" not in c for c in data["cells"])
    page = client.get(f"/submissions/{sub.pk}/").content.decode()
    assert "its submitter can see why" in page
    for private in ("10.9.8.7", "secret-internal-name", "HTTP 500", "consecutive"):
        assert private not in page


def test_staff_see_everything(client, charlie, alice, version) -> None:
    sub = mine(version, alice, status=SubmissionStatus.FAILED, failure_reason="probe: unknown model")
    client.force_login(charlie)
    data = poll(client, sub)
    assert data["failure_reason"] == "probe: unknown model" and set(data) >= PRIVATE_KEYS
    assert "secret-internal-name" in client.get(f"/submissions/{sub.pk}/").content.decode()


def test_the_owner_sees_that_a_key_is_stored_but_never_the_key(client, alice, version) -> None:
    sub = mine(version, alice, api_key="sk-status-page-key-777")
    client.force_login(alice)
    page = client.get(f"/submissions/{sub.pk}/").content.decode()
    assert "A key is stored, encrypted" in page and "sk-status-page-key-777" not in page
    assert poll(client, sub)["api_key_stored"] is True


@pytest.mark.parametrize(("status", "words"), [
    (SubmissionStatus.PENDING_REVIEW, "Waiting for a maintainer to approve it"),
    (SubmissionStatus.RUNNING, "probing the endpoint"),
    (SubmissionStatus.CANCELLED, "Cancelled. Results scored before"),
    (SubmissionStatus.REJECTED, "A maintainer rejected it"),
])
def test_each_status_is_explained_in_plain_words(client, alice, version, status, words) -> None:
    sub = mine(version, alice, status=status)
    client.force_login(alice)
    assert words in client.get(f"/submissions/{sub.pk}/").content.decode()


def test_a_completed_submission_links_to_its_results(client, version) -> None:
    sub = make_completed(version, "Done-7B", {512: 90, 1024: 80})
    data = poll(client, sub)
    assert data["ended"] and data["results_url"] == f"/models/{sub.pk}/" and data["percent"] == 100.0
    assert "its scores are on the leaderboard" in data["explanation"]


def test_visitors_see_public_submissions_but_not_withdrawn_ones(client, alice, version) -> None:
    sub = mine(version, alice, status=SubmissionStatus.RUNNING)
    assert client.get(f"/submissions/{sub.pk}/").status_code == 200
    Submission.objects.filter(pk=sub.pk).update(visibility=Visibility.HIDDEN)
    assert client.get(f"/submissions/{sub.pk}/").status_code == 404
    assert client.get(f"/submissions/{sub.pk}/progress.json").status_code == 404
    assert client.get("/submissions/424242/").status_code == 404


def test_my_submissions_lists_only_mine_with_status_and_links(client, alice, bob, version) -> None:
    mine(version, alice, status=SubmissionStatus.RUNNING)
    done = make_completed(version, "Mine-Done", {512: 90, 1024: 80})
    Submission.objects.filter(pk=done.pk).update(submitter=alice)
    theirs = make_submission(version=version, submitter=bob, model=make_entry(display_name="Bobs-Model"))
    client.force_login(alice)
    page = client.get("/submissions/").content.decode()
    assert "Test model" in page and "Mine-Done" in page and "Bobs-Model" not in page
    assert f'href="/models/{done.pk}/"' in page and "Running" in page and "5 more allowed" not in page
    assert f"/submissions/{theirs.pk}/" not in page
    assert "3 more allowed in the current 7-day window" in page


def test_the_status_page_script_is_served_where_the_page_points(client, alice, version, settings) -> None:
    settings.WHITENOISE_USE_FINDERS = settings.WHITENOISE_AUTOREFRESH = True  # served without collectstatic
    sub = mine(version, alice, status=SubmissionStatus.RUNNING)
    client.force_login(alice)
    page = client.get(f"/submissions/{sub.pk}/").content.decode()
    src = re.search(r'<script src="([^"]+submission-status[^"]*\.js)"', page).group(1)
    response = client.get(src)
    assert response.status_code == 200 and "javascript" in response["Content-Type"]
    text = b"".join(response.streaming_content).decode()
    assert "fetch(url" in text and "innerHTML" not in text  # DOM text only: nothing the server sends is parsed
