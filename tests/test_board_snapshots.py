"""The board is ranked when it changes, not when a visitor asks: a cold page reads a stored snapshot, a change whose
rebuild has not landed is still shown, and rebuilds that finish out of order never leave an older board."""

from __future__ import annotations

import re
import threading

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leaderboard import board, board_snapshots, demo_data, moderation, rows
from leaderboard.models import BenchmarkVersion, BoardSnapshot, LeaderboardRow
from tests.conftest import wait_for
from tests.factories import make_completed, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    from leaderboard import versioning

    v = make_version("snap", publish=True, tasks=2, lengths=[512, 1024, 2048])
    versioning.make_default(v)
    return v


def fresh(version: BenchmarkVersion) -> BenchmarkVersion:
    return BenchmarkVersion.objects.get(pk=version.pk)


def stored(version: BenchmarkVersion, scope: str = "") -> BoardSnapshot:
    return BoardSnapshot.objects.get(version=version, scope=scope)


def names_in_order(snapshot: BoardSnapshot) -> list[str]:
    return [e["row"]["model_name"] for e in board_snapshots.entries_of(snapshot)]


def cold_get(client, url: str):
    cache.clear()  # the whole-page cache would answer a repeated request without the view
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode(), [q["sql"] for q in queries.captured_queries]


def test_a_completed_submission_leaves_its_board_ranked_and_stored_once_it_commits(
        version, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        make_completed(version, "Fading-13B", {512: 95, 1024: 80, 2048: 40})
        make_completed(version, "Strong-7B", {512: 99, 1024: 97, 2048: 95})
    version = fresh(version)
    snapshot = stored(version)
    assert snapshot.revision == version.board_revision
    assert names_in_order(snapshot) == ["Strong-7B", "Fading-13B"]
    assert snapshot.row_count == 2 and snapshot.build_ms > 0
    # Each task category of the version is ready too, ranked by that category's scores.
    categories = {t.category for t in version.tasks.all()}
    assert {s.scope for s in BoardSnapshot.objects.filter(version=version)} == {""} | {
        f"category:{c}" for c in categories}


def test_a_cold_board_reads_the_stored_snapshot_and_never_the_rows_scores(
        client, version, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        make_completed(version, "Strong-7B", {512: 99, 1024: 97, 2048: 95})
        make_completed(version, "Fading-13B", {512: 95, 1024: 80, 2048: 40}, parameters_b=13)
    for url in ("/", "/?category=retrieval", "/?sort=-len2048", "/?min_params=10"):
        body, queries = cold_get(client, url)
        assert not [q for q in queries if re.search(r"scores_by_length|task_scores|category_scores", q)], url
    body, _ = cold_get(client, "/")
    assert body.index("Strong-7B") < body.index("Fading-13B")
    assert "Strong-7B (95% CI)" in body  # the stored chart keeps its confidence bands
    body, _ = cold_get(client, "/?min_params=10")
    assert "Fading-13B" in body and "Strong-7B" not in body


def test_a_change_whose_rebuild_has_not_landed_is_shown_and_the_request_stores_it(client, version) -> None:
    # The test's transaction never commits, so no rebuild runs: every board change below is unseen by snapshots.
    strong = make_completed(version, "Strong-7B", {512: 99, 1024: 97, 2048: 95})
    make_completed(version, "Fading-13B", {512: 95, 1024: 80, 2048: 40})
    board_snapshots.rebuild(version.pk)
    before = stored(version).revision
    moderation.hide(strong, None)
    body, _ = cold_get(client, "/")
    assert "Fading-13B" in body and "Strong-7B" not in body
    snapshot = stored(version)
    assert snapshot.revision == fresh(version).board_revision > before
    assert names_in_order(snapshot) == ["Fading-13B"]


def test_a_rebuild_of_an_older_revision_that_ends_last_never_replaces_the_newer_board(version) -> None:
    make_completed(version, "Strong-7B", {512: 99, 1024: 97, 2048: 95})
    [late] = board_snapshots.build(fresh(version), [board.Scope()])  # read before the next change
    make_completed(version, "Newer-3B", {512: 90, 1024: 88, 2048: 86})
    newer = next(s for s in board_snapshots.rebuild(version.pk) if s.scope == "")
    assert newer.revision > late.revision
    assert board_snapshots.store(late) is False
    assert names_in_order(stored(version)) == ["Strong-7B", "Newer-3B"]
    assert board_snapshots.store(newer) is False  # the same revision again changes nothing
    assert board_snapshots.rebuild(version.pk) == []  # nor does a rebuild of a board already current


@pytest.mark.django_db(transaction=True)
def test_two_completions_whose_rebuilds_cross_leave_the_board_with_both(require_postgres, monkeypatch) -> None:
    """The first completion's rebuild reads the rows, then stalls; the second completes and rebuilds meanwhile.
    The stalled rebuild's store comes last and must not put back the board without the second model."""
    from leaderboard import versioning

    version = make_version("race", publish=True, tasks=1, lengths=[512, 1024])
    versioning.make_default(version)
    real_store, read, release, errors = board_snapshots.store, threading.Event(), threading.Event(), []

    def stalled_store(snapshot: BoardSnapshot) -> bool:
        if threading.current_thread().name == "first":
            read.set()
            release.wait(30)
        return real_store(snapshot)

    monkeypatch.setattr(board_snapshots, "store", stalled_store)

    def first() -> None:
        try:
            make_completed(version, "First-7B", {512: 99, 1024: 97})
        except Exception as exc:  # the test asserts there is none
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=first, name="first")
    thread.start()
    assert read.wait(30), "the first completion's rebuild did not start"
    make_completed(version, "Second-3B", {512: 90, 1024: 88})  # commits and rebuilds while the first one stalls
    assert names_in_order(stored(version)) == ["First-7B", "Second-3B"]
    release.set()
    thread.join(30)
    assert errors == []
    snapshot = stored(version)
    assert snapshot.revision == fresh(version).board_revision
    assert names_in_order(snapshot) == ["First-7B", "Second-3B"]


def test_pages_and_sorts_past_the_first_read_the_stored_entries_in_order(
        client, django_capture_on_commit_callbacks) -> None:
    from leaderboard import versioning

    v = make_version("many", publish=True, tasks=2, lengths=[512, 1024])
    versioning.make_default(v)
    with django_capture_on_commit_callbacks(execute=True):
        summary = demo_data.generate(v, board.PAGE_SIZE + 12, seed=3)
    assert summary.rows > board.PAGE_SIZE
    snapshot = stored(v)
    assert snapshot.revision == fresh(v).board_revision  # one rebuild at the end of the whole generation
    by_rank = names_and_points(board_snapshots.entries_of(snapshot))
    body, _ = cold_get(client, "/?page=2")
    shown = re.findall(r'name="m" value="(\d+)"', body)
    assert [int(pk) for pk in shown] == [e["row"]["id"] for e in board_snapshots.entries_of(snapshot)][
        board.PAGE_SIZE:]
    assert f"rows {board.PAGE_SIZE + 1}–{summary.rows} of {summary.rows}" in body
    body, _ = cold_get(client, "/?sort=-average")
    worst_first = sorted(LeaderboardRow.objects.filter(version=v), key=lambda r: (r.average, -r.pk))
    assert re.findall(r'name="m" value="(\d+)"', body)[0] == str(worst_first[0].pk)
    assert len(by_rank) == summary.rows


def names_and_points(entries: list[dict]) -> list[tuple[str, str, float]]:
    return [(e["row"]["model_name"], board.row_value(e["row"], "method"), board.row_value(e["row"], "budget"))
            for e in entries]


def test_the_model_page_draws_its_needle_depths_from_figures_stored_with_the_result(
        client, django_capture_on_commit_callbacks) -> None:
    from leaderboard import versioning

    v = make_version("depths", publish=True, tasks=1, lengths=[512, 1024])
    versioning.make_default(v)
    demo_data.generate(v, 1, seed=5, samples_per_cell=4)
    row = LeaderboardRow.objects.get(version=v, method="full")
    sub = row.submission
    depth = sub.figures["depth"]
    assert depth and {p["length"] for p in depth} <= {512, 1024}
    assert sub.figures["answers"]["stop"] >= 0
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/models/{sub.pk}/")
    assert response.status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if "depth_percent" in q["sql"]]
    assert "Retrieval by needle depth and context length" in response.content.decode()


def test_a_rebuild_that_fails_leaves_requests_building_the_board_themselves(
        client, version, django_capture_on_commit_callbacks, monkeypatch, caplog) -> None:
    make_completed(version, "Strong-7B", {512: 99, 1024: 97, 2048: 95})
    real_build = board_snapshots.build

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away mid-rebuild")

    monkeypatch.setattr(board_snapshots, "build", broken)
    with django_capture_on_commit_callbacks(execute=True):
        rows.recompute(make_completed(version, "Fading-13B", {512: 95, 1024: 80, 2048: 40}).pk)
    assert "the database went away mid-rebuild" in caplog.text  # logged, not raised into the completing worker
    monkeypatch.setattr(board_snapshots, "build", real_build)
    body, _ = cold_get(client, "/")
    assert body.index("Strong-7B") < body.index("Fading-13B")
    wait_for(lambda: stored(version).revision == fresh(version).board_revision, 5, "the request to store the board")
