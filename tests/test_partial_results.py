"""A model page before its submission completes: where it stands, a link to its status, the cells finished so far."""

from __future__ import annotations

import re

import pytest

from leaderboard import moderation
from leaderboard.models import Cell, CellStatus, SubmissionStatus, Visibility
from tests.factories import make_entry, make_submission, make_version

pytestmark = pytest.mark.django_db
XSS = '<script>alert("x")</script>'


@pytest.fixture
def version():
    return make_version("t1", publish=True, tasks=2, lengths=[512, 1024], samples_per_cell=4)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def running(version, **fields):
    sub = make_submission(version=version, status=SubmissionStatus.RUNNING, **fields)
    first, second = version.tasks.order_by("key")
    Cell.objects.bulk_create([
        Cell(submission=sub, task=first, length=512, status=CellStatus.COMPLETED, score=75.0, ci_low=30.1,
             ci_high=95.4, samples_total=4, samples_done=4),
        Cell(submission=sub, task=first, length=1024, status=CellStatus.RUNNING, samples_total=4, samples_done=1),
        Cell(submission=sub, task=second, length=512, status=CellStatus.PENDING, samples_total=4),
        Cell(submission=sub, task=second, length=1024, status=CellStatus.PENDING, samples_total=4),
    ])
    return sub


def test_a_running_submissions_model_page_shows_its_finished_cells_marked_partial(client, version) -> None:
    sub = running(version)
    response = client.get(f"/models/{sub.pk}/")
    assert response.status_code == 200
    page = text(response)
    assert "partial: running" in page and "Still running: no result yet" in page
    assert "1 of 4 cells finished so far" in page
    assert f'<a id="status-link" href="/submissions/{sub.pk}/">Follow it on its status page</a>' in page
    assert "<strong>75.0</strong> <small>30.1–95.4</small> <small>n=4</small>" in page
    assert "running 1/4 samples" in page and "pending 0/4 samples" in page
    assert "Partial:</strong> scores of the 1 finished full-cache cell only" in page
    assert "no per-length score, average, interval or effective length" in page
    assert 'aria-label="Finished cells by task and length (partial)"' in page  # the heatmap of what exists


def test_a_submission_before_its_grid_explains_that_it_is_waiting_and_links_its_status(client, version) -> None:
    sub = make_submission(version=version)
    page = text(client.get(f"/models/{sub.pk}/"))
    assert "Waiting for a free evaluation worker" in page and f'href="/submissions/{sub.pk}/"' in page
    assert "No cell has finished yet: the grid of cells appears once a worker has taken the submission" in page
    assert "partial-cells" not in page and "plotly" not in page.lower()


def test_a_cancelled_submission_keeps_its_finished_cells_as_partial_and_unranked(client, version, charlie) -> None:
    sub = running(version)
    moderation.cancel(sub, charlie)
    page = text(client.get(f"/models/{sub.pk}/"))
    assert "partial: cancelled, not ranked" in page and "No result: cancelled" in page
    assert "<strong>75.0</strong>" in page


def test_a_failed_submission_tells_the_public_only_that_it_failed(client, version) -> None:
    sub = make_submission(version=version, status=SubmissionStatus.FAILED,
                          failure_reason="http://10.1.2.3/v1 refused the key")
    page = text(client.get(f"/models/{sub.pk}/"))
    assert "The evaluation failed; its submitter can see why." in page and "10.1.2.3" not in page


def test_a_hidden_unfinished_submission_is_still_not_found_for_the_public(client, version) -> None:
    sub = running(version, visibility=Visibility.HIDDEN)
    assert client.get(f"/models/{sub.pk}/").status_code == 404


def test_kv_cells_of_a_running_local_model_are_counted_not_shown(client, version) -> None:
    sub = running(version, model=make_entry(kind="huggingface", hf_repo="org/model"))
    Cell.objects.create(submission=sub, task=version.tasks.first(), length=512, method="snapkv", budget=0.5,
                        status=CellStatus.COMPLETED, score=50.0, samples_total=4, samples_done=4)
    page = text(client.get(f"/models/{sub.pk}/"))
    assert "Measured so far (partial, full cache)" in page
    assert "1 cell of KV methods also finished; they are shown with the result" in page


def test_names_on_the_unfinished_page_are_escaped(client, version) -> None:
    sub = running(version, model=make_entry(display_name=XSS, organisation=XSS))
    body = client.get(f"/models/{sub.pk}/").content.decode()
    assert XSS not in body and "&lt;script&gt;" in body
