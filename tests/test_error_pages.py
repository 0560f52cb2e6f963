"""404 and 500 pages in the site's style, as served with DEBUG=False."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from tests.factories import make_submission, make_version

XSS = "<b>x</b>"


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver"]
    return settings


@pytest.mark.django_db
def test_an_unknown_address_gets_the_sites_404_page_with_its_navigation(client, production) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert '<section class="status-box error-page" id="not-found">' in body and "<h1>Not found</h1>" in body
    assert "/static/css/site.css" in body and 'href="/versions/"' in body  # the site's layout and links
    assert "<code>/no/such/page/</code>." in body and "Resolver404" not in body


@pytest.mark.django_db
def test_a_missing_object_says_what_is_missing_and_escapes_the_address(client, production) -> None:
    response = client.get("/versions/nope/")
    assert response.status_code == 404
    assert "No BenchmarkVersion matches the given query." in response.content.decode()
    body = client.get(f"/no/{XSS}/").content.decode()
    assert XSS not in body and "%3Cb%3Ex%3C/b%3E" in body


@pytest.mark.django_db
def test_a_withdrawn_result_explains_itself_on_the_404_page(client, production) -> None:
    sub = make_submission(version=make_version("t1", publish=True), visibility="hidden")
    response = client.get(f"/models/{sub.pk}/")
    assert response.status_code == 404
    assert "This result was withdrawn from the leaderboard." in response.content.decode()


@pytest.mark.django_db
def test_a_failing_view_gets_the_sites_500_page(production) -> None:
    production.ROOT_URLCONF = "tests.error_urls"
    client = Client(raise_request_exception=False)
    response = client.get("/broken/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body and "/static/css/site.css" in body
    assert "a bug in a view" not in body and "Traceback" not in body


def test_the_500_page_renders_without_the_database_or_context_processors(production) -> None:
    # No django_db mark: any query here would raise. server_error renders with an empty context.
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    body = response.content.decode()
    assert '<header class="top"><a class="brand" href="/">LongCtx Leaderboard</a></header>' in body
    assert "Server error · LongCtx Leaderboard" in body and "HTTP 500" in body
