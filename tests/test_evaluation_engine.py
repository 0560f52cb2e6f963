"""Endpoint submissions run end to end: probe, grid, cells on real workers, scores, faults, cancel (a killed
worker: tests/test_worker_recovery.py)."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from kombu import Connection

from evalworkers import runner
from evalworkers.tasks import start_submission
from leaderboard import moderation
from leaderboard.models import CellStatus, LeaderboardRow, SampleResult, Submission, SubmissionStatus
from tests.conftest import wait_for
from tests.factories import endpoint_submission, run_inline
from tests.fake_openai import FakeOpenAI, Fault
from tests.needle_reader import expected_score, needle_reader

pytestmark = pytest.mark.slow  # real HTTP servers (the fake endpoint), with retries and timeouts

KEY = "sk-engine-test-key-0042"
FAST_RETRIES = {"EVAL_BACKOFF_BASE_S": "0.01", "EVAL_BACKOFF_CAP_S": "0.05", "EVAL_MAX_RETRIES": "3",
                "EVAL_REQUEST_TIMEOUT_S": "2", "EVAL_DEADLINE_S": "6", "EVAL_BREAKER_THRESHOLD": "4",
                "EVAL_PROBE_TIMEOUT_S": "5", "EVAL_PROBE_RETRY_S": "0"}


@pytest.fixture
def fast_retries(settings):
    for name, value in FAST_RETRIES.items():
        setattr(settings, name, float(value) if "." in value else int(value))
    return settings


@pytest.fixture
def server():
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=needle_reader(3), max_model_len=32768) as fake:
        yield fake


def submission_for(server: FakeOpenAI, *, samples: int = 4, lengths: tuple[int, ...] = (512, 1024),
                   slug: str = "eng") -> Submission:
    return endpoint_submission(server.base_url, slug, api_key=KEY, lengths=lengths, samples=samples)


def assert_scores_match_the_model(sub: Submission) -> None:
    for cell in sub.cells.all():
        values = [r.expected[0] for r in cell.samples.order_by("index")]
        assert len(values) == cell.samples_total
        assert cell.score == pytest.approx(expected_score(values, 3))
        assert cell.ci_low <= cell.score <= cell.ci_high


# --- through the queue, on real workers ---------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_submission_completes_through_a_real_worker_with_the_expected_scores(
        require_postgres, redis_url, start_worker, server) -> None:
    sub = submission_for(server)
    worker = start_worker(redis_url, extra_env=FAST_RETRIES)
    with Connection(redis_url) as conn:
        start_submission.apply_async(args=[sub.pk], connection=conn)
    wait_for(lambda: Submission.objects.get(pk=sub.pk).status in SubmissionStatus.ended(), 120,
             "the submission to end", worker.output)
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    assert sub.cells_done == sub.cells_total == 2 and sub.samples_done == 8 and sub.samples_errored == 0
    assert sub.probe_result["ok"] and sub.probe_result["chars_per_token"]
    assert not sub.has_api_key
    assert_scores_match_the_model(sub)
    assert all(r.prompt_tokens and r.latency_s is not None for r in SampleResult.objects.filter(cell__submission=sub))
    assert KEY not in worker.output()
    # The worker recomputes the row right after the completing transaction commits: a moment after the status.
    wait_for(lambda: LeaderboardRow.objects.filter(submission=sub).exists(), 30, "the leaderboard row",
             worker.output)
    row = LeaderboardRow.objects.get(submission=sub)
    cells = {c.length: c.score for c in sub.cells.all()}
    assert row.scores_by_length == {str(k): v for k, v in cells.items()}
    assert row.average == pytest.approx(sum(cells.values()) / len(cells))


@pytest.mark.django_db(transaction=True)
def test_cancelling_stops_the_worker_within_a_couple_of_samples(
        require_postgres, redis_url, start_worker, server) -> None:
    server.latency_s = 0.3
    sub = submission_for(server, samples=40, lengths=(512,))
    worker = start_worker(redis_url, extra_env={**FAST_RETRIES, "EVAL_CONCURRENCY": "1"})
    with Connection(redis_url) as conn:
        start_submission.apply_async(args=[sub.pk], connection=conn)
    wait_for(lambda: SampleResult.objects.filter(cell__submission=sub).count() >= 2, 60, "samples to start",
             worker.output)
    moderation.cancel(Submission.objects.get(pk=sub.pk), None)
    at_cancel = SampleResult.objects.filter(cell__submission=sub).count()
    calls_at_cancel = len(server.generation_requests)
    time.sleep(2.0)  # at 0.3 s a sample, an ignored cancel would send ~6 more requests in this time
    assert len(server.generation_requests) <= calls_at_cancel + 3
    assert SampleResult.objects.filter(cell__submission=sub).count() <= at_cancel + 3
    assert Submission.objects.get(pk=sub.pk).status == SubmissionStatus.CANCELLED


# --- the same runner in-process: probe failures and fault modes -------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda s: setattr(s, "api_key", "sk-another-key"), "check that the API key is correct"),
        (lambda s: setattr(s, "models", ["other-model"]), "other-model"),
        (lambda s: setattr(s, "max_model_len", 600), "context"),
    ],
)
def test_a_failed_probe_fails_the_submission_at_once_with_the_reason(server, fast_retries, setup, words) -> None:
    setup(server)
    sub = run_inline(submission_for(server))
    assert sub.status == SubmissionStatus.FAILED
    assert words.lower() in sub.failure_reason.lower()
    assert not sub.cells.exists() and not sub.has_api_key
    assert KEY not in sub.failure_reason


@pytest.mark.django_db
def test_an_unreachable_endpoint_fails_with_an_actionable_message(fast_retries) -> None:
    sub = run_inline(endpoint_submission("http://127.0.0.1:9/v1", "down", model="test-model"))
    assert sub.status == SubmissionStatus.FAILED and "127.0.0.1:9" in sub.failure_reason


@pytest.mark.django_db
def test_429_with_retry_after_and_random_500s_are_retried_to_the_right_scores(server, fast_retries) -> None:
    sub = submission_for(server)
    runner.start(sub.pk)
    server.fail_next(2, status=429, retry_after="0")
    server.fail_next(3, status=500)
    for cell in sub.cells.all():
        runner.run_cell(cell.pk)
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED and sub.samples_errored == 0
    assert_scores_match_the_model(sub)
    for result in SampleResult.objects.filter(cell__submission=sub):  # the browser's excerpt shows the needle
        assert result.expected[0] in result.metadata["excerpt"]
    for cell in sub.cells.all():  # measured (the server's usage) next to the target the samples were sized to
        targets = [r.metadata["target_prompt_tokens"] for r in cell.samples.all()]
        assert cell.target_prompt_tokens_mean == pytest.approx(sum(targets) / len(targets))
        assert cell.prompt_tokens_mean > 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=200, body="{not json"),
        Fault(status=502, body="<html><body>Bad gateway</body></html>", content_type="text/html"),
        Fault(delay_s=3.0),
        Fault(status=200, body="x" * (10 * 1024 * 1024)),
    ],
    ids=["malformed-json", "html-error-page", "slow-past-timeout", "10mb-body"],
)
def test_a_sample_that_keeps_failing_is_an_error_not_a_wrong_answer(server, fast_retries, fault) -> None:
    sub = submission_for(server, samples=4, lengths=(512,))
    runner.start(sub.pk)
    # Enough for every attempt of the first sample(s), then recovery; the cell's one-token calibration requests
    # are left alone.
    server.inject(dataclasses.replace(fault, match=lambda body: body.get("max_tokens") != 1), times=4 * 1)
    fast_retries.EVAL_CONCURRENCY = 1
    runner.run_cell(sub.cells.get().pk)
    cell = sub.cells.get()
    errored = list(cell.samples.filter(score__isnull=True))
    assert errored, "the fault should have cost at least one sample"
    assert all(r.error for r in errored)
    scored = list(cell.samples.filter(score__isnull=False))
    assert cell.samples_errored == len(errored)
    if scored:
        assert cell.status == CellStatus.COMPLETED
        assert cell.score == pytest.approx(expected_score([r.expected[0] for r in scored], 3))


@pytest.mark.django_db
def test_a_dead_endpoint_opens_the_breaker_and_fails_the_cell_with_the_reason(server, fast_retries) -> None:
    sub = submission_for(server, samples=12, lengths=(512,))
    runner.start(sub.pk)
    server.inject(Fault(status=503), times=None)
    runner.run_cell(sub.cells.get().pk)
    cell = sub.cells.get()
    sub.refresh_from_db()
    assert cell.status == CellStatus.FAILED and "consecutive" in cell.error.lower()
    assert cell.samples.count() < 12  # it stopped instead of hammering every sample
    assert sub.status == SubmissionStatus.FAILED and "niah_0 @ 512 tokens" in sub.failure_reason


@pytest.mark.django_db
def test_rerunning_a_cell_skips_the_samples_already_stored(server, fast_retries) -> None:
    sub = submission_for(server, samples=6, lengths=(512,))
    runner.start(sub.pk)
    cell = sub.cells.get()
    runner.run_cell(cell.pk)

    def sample_requests() -> int:  # not the cell's one-token calibration requests
        return sum(r.body.get("max_tokens") != 1 for r in server.generation_requests)

    calls = sample_requests()
    # As after a worker crash: two samples missing, the cell and its submission still running, its lease stale.
    SampleResult.objects.filter(cell=cell, index__in=[1, 4]).delete()
    type(cell).objects.filter(pk=cell.pk).update(status=CellStatus.RUNNING,
                                                 heartbeat_at=timezone.now() - timedelta(minutes=5))
    Submission.objects.filter(pk=sub.pk).update(status=SubmissionStatus.RUNNING)
    runner.run_cell(cell.pk)
    assert sample_requests() == calls + 2
    assert sorted(cell.samples.values_list("index", flat=True)) == list(range(6))
