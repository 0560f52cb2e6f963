"""Anonymous clients of the read API and the CSV exports are rate-limited per address (429 with Retry-After);
logged-in users are not; the per-sample export streams."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from leaderboard.models import SampleResult
from tests.factories import make_completed, make_default_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def completed():
    version = make_default_version("api", lengths=[512, 1024])
    return make_completed(version, "Model-1B", {512: 90, 1024: 80})


def test_past_the_rate_an_anonymous_client_gets_429_with_retry_after(settings, completed) -> None:
    settings.API_RATE = (3, 60)
    client = Client()
    urls = ["/api/v1/versions", "/api/v1/leaderboard", f"/api/v1/submissions/{completed.pk}"]
    assert [client.get(u).status_code for u in urls] == [200, 200, 200]
    for url in (*urls, "/leaderboard.csv", f"/models/{completed.pk}/samples.csv", "/api/v1/openapi.json"):
        refused = client.get(url)
        assert refused.status_code == 429, url
        assert 1 <= int(refused["Retry-After"]) <= 60
        body = refused.json()
        assert body["error"] == "rate_limited" and body["retry_after"] == int(refused["Retry-After"])
    assert Client(REMOTE_ADDR="203.0.113.5").get("/api/v1/versions").status_code == 200  # another client
    assert client.get("/").status_code == 200  # pages are not the API


def test_a_logged_in_user_is_not_rate_limited(settings, alice, completed) -> None:
    settings.API_RATE = (1, 60)
    client = Client()
    client.force_login(alice)
    assert {client.get("/api/v1/leaderboard").status_code for _ in range(5)} == {200}


def test_the_window_turns_over(settings, completed) -> None:
    from leaderboard import throttle

    rate = (2, 60)
    assert [throttle.hit("t", "k", rate, now=120.0).allowed for _ in range(3)] == [True, True, False]
    assert throttle.hit("t", "k", rate, now=150.0).retry_after == 30
    assert throttle.hit("t", "k", rate, now=180.0).allowed  # the next minute


def test_the_per_sample_export_streams(client, completed) -> None:
    cell = completed.cells.first()
    SampleResult.objects.bulk_create(SampleResult(cell=cell, index=i, prediction=str(i), expected=[str(i)],
                                                  score=100.0) for i in range(50))
    response = client.get(f"/models/{completed.pk}/samples.csv")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.getvalue().decode())))
    assert len(rows) == 50 and rows[0]["prediction"] == "0"
