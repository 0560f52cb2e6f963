"""A submitter's API key: encrypted at rest, used only as the Bearer token, never shown, logged or exported,
and erased when the evaluation ends. Each test collects every page, API response, export and log line of a
whole run (submit, probe, cells, completion, status polling, staff admin) and searches them for the key.
"""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command

from evalworkers import runner
from leaderboard.models import Submission, SubmissionStatus
from tests.factories import make_default_version, submission_post
from tests.fake_openai import ALL_PATHS, FakeOpenAI, Fault

pytestmark = pytest.mark.slow  # real HTTP servers (the fake endpoint)

KEY = "sk-live-SECRET-handling-0123456789abcdef"
PARTS = (KEY, KEY[:12], KEY[-12:])  # also no recognisable piece of it


class Collector:
    """Everything the service sent out during a test: pages, JSON, CSV, headers."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, str]] = []

    def get(self, client, url: str) -> None:
        response = client.get(url, follow=True)
        assert response.status_code < 500, url
        self.add(url, response)

    def add(self, url: str, response) -> None:
        body = b"".join(response.streaming_content) if response.streaming else response.content
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.outputs.append((url, headers + "\n" + body.decode("utf-8", "replace")))

    def leaks(self) -> list[str]:
        return [url for url, text in self.outputs if any(p in text for p in PARTS)]


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "django", "django.request", "evalworkers", "leaderboard"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def pages_of(sub: Submission) -> list[str]:
    return [f"/submissions/{sub.pk}/", f"/submissions/{sub.pk}/progress.json", "/submissions/", "/",
            f"/api/v1/submissions/{sub.pk}", "/api/v1/leaderboard", "/leaderboard.csv", f"/models/{sub.pk}/",
            f"/models/{sub.pk}/samples.csv", "/status/", "/status/workers.json", "/submit/"]


ADMIN_PAGES = ["/admin/leaderboard/submission/", "/admin/leaderboard/submission/{id}/change/",
               "/admin/leaderboard/modelentry/{entry}/change/", "/admin/leaderboard/taskrecord/",
               "/admin/leaderboard/cell/", "/admin/leaderboard/submissionevent/"]


def visit_everything(collector: Collector, client, staff_client, sub: Submission) -> None:
    for url in pages_of(sub):
        collector.get(client, url)
    for url in ADMIN_PAGES:
        collector.get(staff_client, url.format(id=sub.pk, entry=sub.model_id))


def database_dump() -> str:
    out = io.StringIO()
    call_command("dumpdata", "leaderboard", "auth", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_key_of_a_whole_successful_run_appears_nowhere_and_is_erased_at_the_end(
        client, alice, charlie, logs, capfd, settings) -> None:
    settings.EVAL_STREAM = False
    make_default_version("t1", lengths=[512, 1024], samples_per_cell=2)
    staff = type(client)()
    staff.force_login(charlie)
    seen = Collector()
    with FakeOpenAI(models=("m",), api_key=KEY, max_model_len=8192) as server:
        client.force_login(alice)
        seen.add("/submit/ POST", client.post("/submit/", submission_post(
            endpoint_url=server.base_url, api_model_name="m", api_key=KEY), follow=True))
        sub = Submission.objects.get()
        assert sub.get_api_key() == KEY and not any(p in sub.api_key_encrypted for p in PARTS)
        visit_everything(seen, client, staff, sub)  # queued

        cell_ids = runner.start(sub.pk).cell_ids  # the worker's code: probe, grid
        assert cell_ids, Submission.objects.get(pk=sub.pk).failure_reason
        visit_everything(seen, client, staff, sub)  # running, key still stored
        assert "A key is stored" in seen.outputs[-len(ADMIN_PAGES) - len(pages_of(sub))][1]
        for cell_id in cell_ids:
            runner.run_cell(cell_id)
        sub.refresh_from_db()
        assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
        visit_everything(seen, client, staff, sub)  # completed
        assert server.count() > 2 and all(r.headers.get("authorization") == f"Bearer {KEY}" for r in server.requests)

    assert not sub.has_api_key and sub.api_key_encrypted == ""  # erased when it ended
    assert seen.leaks() == []
    assert len(seen.outputs) >= 3 * (len(pages_of(sub)) + len(ADMIN_PAGES))
    assert logs.records and not any(p in logs.text for p in PARTS)
    out, err = capfd.readouterr()
    assert not any(p in out + err for p in PARTS)
    assert not any(p in database_dump() for p in PARTS)


@pytest.mark.django_db
def test_a_server_that_echoes_the_refused_key_does_not_make_it_leak(client, alice, charlie, logs, capfd) -> None:
    make_default_version("t1", lengths=[512], samples_per_cell=2)
    staff = type(client)()
    staff.force_login(charlie)
    seen = Collector()
    with FakeOpenAI(models=("m",), api_key="sk-the-right-one-999", max_model_len=8192) as server:
        server.inject(Fault(status=401, message=f"Incorrect API key provided: {KEY}. Find yours at ...",
                            paths=ALL_PATHS), times=None)
        client.force_login(alice)
        client.post("/submit/", submission_post(endpoint_url=server.base_url, api_model_name="m", api_key=KEY))
        sub = Submission.objects.get()
        assert runner.start(sub.pk).cell_ids == []
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.FAILED and "refused access" in sub.failure_reason
    assert not sub.has_api_key
    visit_everything(seen, client, staff, sub)
    assert "refused access" in seen.outputs[0][1]  # the owner reads why
    assert seen.leaks() == []
    assert not any(p in logs.text for p in PARTS)
    out, err = capfd.readouterr()
    assert not any(p in out + err for p in PARTS)
    assert not any(p in database_dump() for p in PARTS)


@pytest.mark.django_db
def test_a_refused_form_with_a_key_neither_renders_nor_logs_it(client, alice, logs, capfd) -> None:
    make_default_version("t1")
    client.force_login(alice)
    response = client.post("/submit/", submission_post(api_key=KEY, claimed_context="-1"))
    assert response.status_code == 400
    assert not any(p in response.content.decode() for p in PARTS)
    assert 'name="api_key"' in response.content.decode() and f'value="{KEY}"' not in response.content.decode()
    assert not any(p in logs.text for p in PARTS)
    out, err = capfd.readouterr()
    assert not any(p in out + err for p in PARTS)


@pytest.mark.django_db
def test_the_submit_view_hides_the_key_from_error_reports(alice) -> None:
    """Should anything fail while handling the form, Django's error report shows the key as stars."""
    from django.test import RequestFactory
    from django.views.debug import SafeExceptionReporterFilter

    from leaderboard import submission_views

    make_default_version("t1")
    request = RequestFactory().post("/submit/", submission_post(api_key=KEY, claimed_context="-1"))
    request.user = alice
    submission_views.submit(request)
    assert list(request.sensitive_post_parameters) == ["api_key"]
    cleaned = SafeExceptionReporterFilter().get_post_parameters(request)
    assert cleaned["api_key"] != KEY and cleaned["display_name"] == "Llama-Test-8B"
