"""A newcomer in headless Chromium: sign up, confirm the e-mail address through the link, submit a local test
endpoint, watch the progress bar move without a page reload, and find the completed result on the leaderboard.
Real web server, real Celery worker on Redis, real OpenAI-compatible test server (private endpoints are allowed, as
in the demo)."""

from __future__ import annotations

import functools
import re

import pytest
from django.core import mail
from kombu import Connection

from leaderboard import moderation
from leaderboard.models import Submission, SubmissionStatus
from tests.conftest import wait_for
from tests.factories import make_default_version
from tests.fake_openai import FakeOpenAI
from tests.test_leaderboard_browser import ARTIFACTS, browser  # noqa: F401  (the Chromium fixture)

WORKER_ENV = {"EVAL_CONCURRENCY": "1", "EVAL_BACKOFF_BASE_S": "0.01", "EVAL_BACKOFF_CAP_S": "0.05",
              "EVAL_REQUEST_TIMEOUT_S": "5", "EVAL_DEADLINE_S": "10", "EVAL_PROBE_TIMEOUT_S": "5"}


@pytest.fixture
def publish_to(monkeypatch):
    """Let the web process publish to the test's Redis (the suite publishes to memory:// by default)."""
    opened: list[Connection] = []

    def use(redis_url: str) -> None:
        conn = Connection(redis_url)
        opened.append(conn)
        monkeypatch.setattr(moderation.celery_app, "send_task",
                            functools.partial(moderation.celery_app.send_task, connection=conn))

    yield use
    for conn in opened:
        conn.release()


@pytest.mark.django_db(transaction=True)
def test_a_newcomer_signs_up_submits_watches_the_progress_and_finds_the_result(
        live_server, browser, require_postgres, redis_url, start_worker, publish_to, settings) -> None:  # noqa: F811
    settings.STATUS_POLL_SECONDS = 0.4
    make_default_version("web", lengths=[512, 1024], samples_per_cell=8)
    publish_to(redis_url)
    worker = start_worker(redis_url, extra_env=WORKER_ENV)
    ARTIFACTS.mkdir(exist_ok=True)
    with FakeOpenAI(models=("fake-model",), max_model_len=8192, latency_s=0.35) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(live_server.url + "/")
        page.click("nav >> text=Sign up")
        page.fill("input[name=username]", "newcomer")
        page.fill("input[name=email]", "newcomer@example.org")
        page.fill("input[name=password1]", "a-long-unusual-password-42")
        page.fill("input[name=password2]", "a-long-unusual-password-42")
        with page.expect_navigation():
            page.click("form.stacked button[type=submit]")
        assert page.url.endswith("/submit/"), page.url
        assert "confirm your e-mail address" in page.inner_text("#verify")
        link = re.search(r"http://\S+/accounts/confirm/\S+/", mail.outbox[-1].body).group(0)
        page.goto(link)
        assert "confirmed" in page.inner_text("#confirmation")
        page.goto(live_server.url + "/submit/")
        assert page.is_hidden("fieldset[data-kind=huggingface]")  # the form shows the endpoint's fields only

        page.fill("input[name=display_name]", "Browser-Test-1B")
        page.fill("input[name=organisation]", "Browser Lab")
        page.fill("input[name=claimed_context]", "8192")
        page.fill("input[name=endpoint_url]", server.base_url)
        page.fill("input[name=api_model_name]", "fake-model")
        page.screenshot(path=str(ARTIFACTS / "submit.png"), full_page=True)
        with page.expect_navigation():
            page.click("#submit-form button[type=submit]")
        sub = Submission.objects.get()
        assert page.url.endswith(f"/submissions/{sub.pk}/"), page.url
        page.evaluate("window.__sameDocument = true")  # survives only if the page never reloads

        page.wait_for_function(  # the bar moves: some samples done, not all
            "() => { const p = document.getElementById('overall'); return p.value > 0 && p.value < p.max; }",
            timeout=90_000)
        assert "Running" in page.inner_text("#status-label")
        assert page.locator("#cells tr[data-cell-id]").count() == 2
        page.screenshot(path=str(ARTIFACTS / "submission-running.png"), full_page=True)

        page.wait_for_selector("#results:not([hidden])", timeout=120_000)
        assert page.evaluate("window.__sameDocument === true")
        assert page.inner_text("#status-label") == "Completed"
        assert page.evaluate("document.getElementById('overall').value") == 16
        page.screenshot(path=str(ARTIFACTS / "submission-completed.png"), full_page=True)

    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason + worker.output()
    with page.expect_navigation():
        page.click("#results-link")
    page.wait_for_selector("h1:has-text('Browser-Test-1B')")
    page.goto(live_server.url + "/")
    assert "Browser-Test-1B" in page.inner_text("table.board")
    page.goto(live_server.url + "/submissions/")
    assert "Browser-Test-1B" in page.inner_text("table") and "Completed" in page.inner_text("table")
    wait_for(lambda: worker.stop() == 0, 30, "the worker to stop", worker.output)
