"""A killed worker costs seconds, not hours: leases, the scheduler's recovery, liveness on /status/, and a
submission that completes once when its last cells end together."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu import Connection

from evalworkers import recovery, runner
from evalworkers.liveness import Lease
from evalworkers.tasks import start_submission
from leaderboard import progress, rows, workers
from leaderboard.models import (
    Cell,
    CellStatus,
    EventAction,
    LeaderboardRow,
    SampleResult,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
    TaskRecord,
    WorkerHeartbeat,
)
from tests.conftest import wait_for
from tests.factories import endpoint_submission
from tests.fake_openai import FakeOpenAI
from tests.needle_reader import expected_score, needle_reader

KEY = "sk-recovery-test-key-0077"
# Engine settings that make the probe quick against the fake server; the recovery settings stay the defaults.
ENGINE = {"EVAL_PROBE_TIMEOUT_S": "5", "EVAL_PROBE_RETRY_S": "0", "EVAL_CONCURRENCY": "2"}
BOUND_S = settings.WORKER_LOST_AFTER_S + settings.RECOVERY_INTERVAL_S  # the documented bound (45 s by default)
PICKUP_S = 15.0  # a fresh worker process starting and taking the message


@pytest.fixture
def server():
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=needle_reader(3), max_model_len=32768) as fake:
        yield fake


def stored(sub: Submission) -> int:
    return SampleResult.objects.filter(cell__submission=sub).count()


def held_by(cell: Cell, worker_name: str, recoveries: int) -> bool:
    cell.refresh_from_db()
    return cell.status == CellStatus.RUNNING and cell.worker == worker_name and cell.recoveries == recoveries


def kill(worker) -> float:
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)
    return time.monotonic()


# --- on real processes: Redis, PostgreSQL, workers and the scheduler with the default settings --------------

@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_twice_mid_cell_is_replaced_within_the_bound_and_each_sample_is_scored_once(
        require_postgres, redis_url, start_worker, start_beat, server, client) -> None:
    server.latency_s = 1.0  # two samples a second at concurrency 2: a 40-sample cell takes about 20 s
    sub = endpoint_submission(server.base_url, "recov", api_key=KEY, samples=40)
    start_beat(redis_url)
    start_worker(redis_url, queues="control")  # the scheduler's recovery runs on a worker of its own
    first = start_worker(redis_url, extra_env=ENGINE)
    with Connection(redis_url) as conn:
        start_submission.apply_async(args=[sub.pk], connection=conn)
    wait_for(lambda: stored(sub) >= 4, 90, "a few samples before the first kill", first.output)
    cell = Cell.objects.get(submission=sub)
    assert held_by(cell, first.name, 0)
    status = client.get("/status/workers.json").json()
    running = next(w for w in status["workers"] if (w["worker"], w["queue"]) == (first.name, "api"))
    assert running["state"] == "alive" and running["running"][0]["cell"] == cell.pk

    killed_at = kill(first)
    kept = stored(sub)
    assert kept < 40
    second = start_worker(redis_url, extra_env=ENGINE)
    wait_for(lambda: held_by(cell, second.name, 1), BOUND_S + PICKUP_S, "the cell to pass to the second worker",
             second.output)
    first_recovery_s = time.monotonic() - killed_at
    workers_now = {(w["worker"], w["queue"]): w for w in client.get("/status/workers.json").json()["workers"]}
    assert workers_now[first.name, "api"]["state"] == "lost" and workers_now[first.name, "api"]["running"] == []
    assert workers_now[second.name, "api"]["running"][0]["cell"] == cell.pk

    # Killed again during the resumed cell: the third worker resumes from what the second stored.
    wait_for(lambda: stored(sub) >= kept + 4, 60, "the resumed cell to store samples", second.output)
    killed_again_at = kill(second)
    assert stored(sub) < 40
    third = start_worker(redis_url, extra_env=ENGINE)
    wait_for(lambda: held_by(cell, third.name, 2), BOUND_S + PICKUP_S, "the cell to pass to the third worker",
             third.output)
    second_recovery_s = time.monotonic() - killed_again_at
    wait_for(lambda: Submission.objects.get(pk=sub.pk).status in SubmissionStatus.ended(), 90,
             "the third worker to finish", third.output)

    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    indices = list(SampleResult.objects.filter(cell__submission=sub).order_by("index").values_list("index",
                                                                                                flat=True))
    assert indices == list(range(40))
    cell.refresh_from_db()
    values = [r.expected[0] for r in cell.samples.order_by("index")]
    assert cell.status == CellStatus.COMPLETED and cell.score == pytest.approx(expected_score(values, 3))
    notes = list(sub.events.filter(action=EventAction.RECOVERED).values_list("note", flat=True))
    assert len(notes) == 2 and all("lost" in note for note in notes), notes
    assert LeaderboardRow.objects.filter(submission=sub).count() == 1
    print(f"recovery after SIGKILL: {first_recovery_s:.1f} s, then {second_recovery_s:.1f} s "
          f"(bound {BOUND_S:.0f} s + pickup)")


# --- the recovery's rules, in this process ------------------------------------------------------------------

def running_cell(sub: Submission, *, heartbeat_age_s: float, progress_age_s: float = 0.0,
                 worker: str = "w1@host") -> Cell:
    now = timezone.now()
    cell = Cell.objects.get(submission=sub)
    Cell.objects.filter(pk=cell.pk).update(
        status=CellStatus.RUNNING, worker=worker, lease="a" * 32, started_at=now - timedelta(minutes=30),
        heartbeat_at=now - timedelta(seconds=heartbeat_age_s), progress_at=now - timedelta(seconds=progress_age_s))
    cell.refresh_from_db()
    return cell


@pytest.fixture
def started(db, server) -> Submission:
    sub = endpoint_submission(server.base_url, "rules", api_key=KEY, samples=4)
    runner.start(sub.pk)
    return Submission.objects.get(pk=sub.pk)


def test_a_cell_whose_worker_stopped_beating_is_handed_on_exactly_once(started) -> None:
    cell = running_cell(started, heartbeat_age_s=settings.WORKER_LOST_AFTER_S + 1)
    handed = recovery.lost_cells()
    assert [(h.task, h.task_id, h.queue) for h in handed] == [("run_cell", cell.pk, "api")]
    assert "worker w1@host lost" in handed[0].reason
    assert recovery.lost_cells() == []  # a second scheduler tick, or a second scheduler, finds nothing
    cell.refresh_from_db()
    assert (cell.status, cell.lease, cell.recoveries) == (CellStatus.PENDING, "", 1)
    assert started.events.filter(action=EventAction.RECOVERED).count() == 1


def test_a_live_workers_cell_is_left_alone_until_it_stalls(started) -> None:
    cell = running_cell(started, heartbeat_age_s=1, progress_age_s=settings.CELL_STALL_AFTER_S - 30)
    assert recovery.lost_cells() == []
    running_cell(started, heartbeat_age_s=1, progress_age_s=settings.CELL_STALL_AFTER_S + 1)
    handed = recovery.lost_cells()
    assert [h.task_id for h in handed] == [cell.pk] and "no sample stored for" in handed[0].reason


def test_a_late_redelivery_of_a_cell_another_run_holds_does_nothing(started, server) -> None:
    cell = running_cell(started, heartbeat_age_s=1)
    requests_before = len(server.generation_requests)  # the probe's
    runner.run_cell(cell.pk, worker="late@host")
    cell.refresh_from_db()
    assert (cell.status, cell.worker, cell.lease) == (CellStatus.RUNNING, "w1@host", "a" * 32)
    assert len(server.generation_requests) == requests_before and stored(started) == 0


def test_a_run_that_lost_its_lease_leaves_the_cell_to_its_new_holder(started) -> None:
    cell = running_cell(started, heartbeat_age_s=1)
    old = Lease(cell.pk)  # a run whose cell the recovery handed on: its token is no longer the cell's
    assert old.refresh() is False and old.lost.is_set()
    runner.finish_cell(cell.pk, lease=old, error="the old run's view")
    cell.refresh_from_db()
    assert cell.status == CellStatus.RUNNING and cell.error == ""


def test_a_cell_run_in_process_inside_a_transaction_keeps_its_lease_past_a_heartbeat(started, server,
                                                                                     settings) -> None:
    settings.WORKER_HEARTBEAT_S = 1.0  # several heartbeats pass during the cell
    server.latency_s = 0.6
    cell = Cell.objects.get(submission=started)
    runner.run_cell(cell.pk, worker="inline@host")  # four samples, one at a time: more than two heartbeats
    cell.refresh_from_db()
    assert cell.status == CellStatus.COMPLETED and cell.samples_done == 4


@pytest.mark.django_db(transaction=True)
def test_a_long_running_cell_keeps_proving_its_worker_alive(require_postgres, server, settings) -> None:
    settings.WORKER_HEARTBEAT_S = 1.0
    server.latency_s = 1.5  # the cell's calibration requests and its one sample: several heartbeats, one write
    sub = endpoint_submission(server.base_url, "alive", api_key=KEY, samples=1)
    cell_id = runner.start(sub.pk).cell_ids[0]
    beats_before_any_sample: set = set()
    errors: list = []
    run = in_thread(lambda: runner.run_cell(cell_id, worker="busy@host"), errors)
    while run.is_alive():
        if not SampleResult.objects.filter(cell_id=cell_id).exists():
            beats_before_any_sample.add(Cell.objects.filter(pk=cell_id).values_list("heartbeat_at", flat=True)[0])
        time.sleep(0.2)
    run.join()
    assert errors == [] and Cell.objects.get(pk=cell_id).status == CellStatus.COMPLETED
    assert len(beats_before_any_sample - {None}) >= 3  # the lease's own thread, not the writes, kept it fresh


def test_a_start_that_made_no_cells_is_sent_again_once(db, server) -> None:
    sub = endpoint_submission(server.base_url, "start", api_key=KEY)
    long_ago = timezone.now() - timedelta(seconds=settings.EVAL_PROBE_RETRY_S + settings.WORKER_LOST_AFTER_S + 301)
    Submission.objects.filter(pk=sub.pk).update(status=SubmissionStatus.RUNNING, started_at=long_ago)
    handed = recovery.stalled_starts()
    assert [(h.task, h.task_id) for h in handed] == [("start_submission", sub.pk)]
    assert recovery.stalled_starts() == []


# --- what the pages say while it happens ----------------------------------------------------------------

def beat(worker: str, queue: str, age_s: float, *, stopped: bool = False) -> None:
    seen = timezone.now() - timedelta(seconds=age_s)
    WorkerHeartbeat.objects.create(worker=worker, queue=queue, seen_at=seen, stopped_at=seen if stopped else None)


def test_the_queue_page_shows_each_worker_alive_lost_or_stopped_with_its_current_cell(client, started) -> None:
    cell = running_cell(started, heartbeat_age_s=2, worker="api-1@host")
    beat("api-1@host", "api", 2)
    beat("api-2@host", "api", settings.WORKER_LOST_AFTER_S + 5)
    beat("gpu-1@host", "gpu", 400, stopped=True)
    TaskRecord.objects.create(task_id="t-1", task_name="evalworkers.tasks.run_cell", queue="api", args=[cell.pk])
    by_name = {w.worker: w for w in workers.worker_rows()}
    assert [by_name[n].state for n in ("api-1@host", "api-2@host", "gpu-1@host")] == ["alive", "lost", "stopped"]
    assert [r.cell_id for r in by_name["api-1@host"].running] == [cell.pk]
    page = client.get("/status/").content.decode()
    label = f"{cell.task.key} @ 512 tokens"
    assert label in page and "<strong>lost</strong>" in page and "stopped" in page
    assert f"cell {label} of submission #{started.pk}" in page  # the recent task names its cell


def test_the_queue_page_lists_lost_cells_apart_even_under_a_reused_worker_name_and_says_when_recovery_last_ran(
        client, started) -> None:
    cell = running_cell(started, heartbeat_age_s=settings.WORKER_LOST_AFTER_S + 20, worker="api@host")
    beat("api@host", "api", 1)  # a new worker took the dead one's name: it is alive, the old run's cell is not
    by_name = {w.worker: w for w in workers.worker_rows()}
    assert by_name["api@host"].state == "alive" and by_name["api@host"].running == []
    assert [c.cell_id for c in workers.lost_cells()] == [cell.pk]
    page = client.get("/status/").content.decode()
    assert "Cells waiting for recovery" in page and "has not run a recovery check yet" in page
    for minutes in (90, 0):
        done = timezone.now() - timedelta(minutes=minutes)
        TaskRecord.objects.create(task_id=f"r-{minutes}", task_name="evalworkers.tasks.recover_lost_work",
                                  queue="control", state="succeeded", finished_at=done)
    assert recovery.forget_old_checks() == 0  # created just now: kept for an hour
    page = client.get("/status/").content.decode()
    assert "checks for lost and stuck work every 15 s; last check 0 s ago" in page
    assert "recovery of lost and stuck work" not in page  # its records do not crowd the recent tasks


def test_the_status_page_says_recovering_or_waiting_instead_of_an_estimate(started) -> None:
    cell = running_cell(started, heartbeat_age_s=settings.WORKER_LOST_AFTER_S + 5, worker="gone@host")
    eta = progress.snapshot(Submission.objects.get(pk=started.pk), "owner")["eta"]
    assert eta["seconds"] is None
    assert eta["text"].startswith("Recovering 1 cell from a lost worker (its run on gone@host")
    Cell.objects.filter(pk=cell.pk).update(status=CellStatus.PENDING, recoveries=1)
    eta = progress.snapshot(Submission.objects.get(pk=started.pk), "owner")["eta"]
    assert eta["text"].startswith("Waiting for a worker: none is consuming the `api` queue")
    beat("api-1@host", "api", 1)
    eta = progress.snapshot(Submission.objects.get(pk=started.pk), "owner")["eta"]
    assert eta["text"].startswith("Recovering: 1 cell taken from a lost worker wait")


# --- finishing is race-free ------------------------------------------------------------------------------

def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database() AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0] > 0


def in_thread(target, errors: list) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except Exception as exc:  # the test asserts there is none
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_two_recomputes_at_once_take_turns_and_leave_one_set_of_rows(require_postgres) -> None:
    sub = endpoint_submission("http://127.0.0.1:9/v1", "race", samples=2, lengths=(512, 1024))
    Submission.objects.filter(pk=sub.pk).update(status=SubmissionStatus.COMPLETED)
    for length in (512, 1024):
        Cell.objects.create(submission=sub, task=sub.version.tasks.get(), length=length,
                            status=CellStatus.COMPLETED, samples_total=2, samples_done=2, score=50.0, ci_low=10.0,
                            ci_high=90.0)
    holding, release, errors = threading.Event(), threading.Event(), []

    def first() -> None:
        with transaction.atomic():
            rows.recompute(sub.pk)
            holding.set()
            release.wait(30)

    one = in_thread(first, errors)
    assert holding.wait(30)
    two = in_thread(lambda: rows.recompute(sub.pk), errors)
    wait_for(waiting_on_a_lock, 30, "the second recompute to wait for the first")
    release.set()
    one.join(30), two.join(30)
    assert errors == []
    assert LeaderboardRow.objects.filter(submission=sub).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_last_two_cells_ending_together_complete_the_submission_once(require_postgres, server,
                                                                         monkeypatch) -> None:
    sub = endpoint_submission(server.base_url, "together", api_key=KEY, samples=2, lengths=(512, 1024))
    runner.start(sub.pk)
    for cell in Cell.objects.filter(submission=sub):  # both cells ended, each by its own worker
        Cell.objects.filter(pk=cell.pk).update(status=CellStatus.COMPLETED, samples_done=2, score=100.0,
                                               ci_low=34.0, ci_high=100.0)
    real_recompute, builds, inside, release = rows.recompute, [], threading.Event(), threading.Event()

    def paused_recompute(submission_id: int):
        builds.append(submission_id)
        result = real_recompute(submission_id)
        inside.set()
        release.wait(30)  # the first completion holds the submission's lock here
        return result

    monkeypatch.setattr(rows, "recompute", paused_recompute)
    errors: list = []
    one = in_thread(lambda: runner.finish_submission_if_done(sub.pk), errors)
    assert inside.wait(30)
    two = in_thread(lambda: runner.finish_submission_if_done(sub.pk), errors)
    wait_for(waiting_on_a_lock, 30, "the second completion to wait for the first")
    release.set()
    one.join(30), two.join(30)
    assert errors == [] and builds == [sub.pk]
    assert SubmissionEvent.objects.filter(submission=sub, action=EventAction.COMPLETED).count() == 1
    assert Submission.objects.get(pk=sub.pk).status == SubmissionStatus.COMPLETED
    assert LeaderboardRow.objects.filter(submission=sub).count() == 1
