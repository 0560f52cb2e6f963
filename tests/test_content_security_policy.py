"""A strict Content-Security-Policy on every response, and pages that run under it: no inline script, event handler
or style attribute anywhere; charts drawn from JSON data blocks by one static script (headless Chromium, with every
console error, a policy violation included, failing the test)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from leaderboard.models import LeaderboardRow, SampleResult, SubmissionStatus
from tests.factories import make_completed, make_default_version, make_submission
from tests.test_leaderboard_browser import browser  # noqa: F401  (the watched Chromium fixture)

pytestmark = pytest.mark.django_db
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.I)


@pytest.fixture
def site(alice):
    version = make_default_version("csp", tasks=2, lengths=[512, 1024, 2048],
                                   kv_methods=["full", "snapkv"], kv_budgets=[1.0, 0.5])
    strong = make_completed(version, "Strong-7B", {512: 99, 1024: 95, 2048: 90})
    local = make_completed(version, "Local-3B", {512: 90, 1024: 80, 2048: 60}, kind="huggingface",
                           points=(("full", 1.0), ("snapkv", 0.5)))
    cell = local.cells.filter(method="full").first()
    SampleResult.objects.create(cell=cell, index=0, prediction="1", expected=["1"], score=100.0,
                                metadata={"depth_percent": 25})
    mine = make_submission(version=version, submitter=alice, status=SubmissionStatus.QUEUED)
    return {"version": version, "strong": strong, "local": local, "mine": mine}


def row(sub) -> int:
    return LeaderboardRow.objects.filter(submission=sub).order_by("pk").first().pk


def public_pages(site) -> list[str]:
    s, v = site, site["version"].slug
    return ["/", f"/?method=snapkv&version={v}", f"/models/{s['local'].pk}/", f"/models/{s['strong'].pk}/",
            f"/compare/?m={row(s['strong'])}&m={row(s['local'])}", "/versions/", f"/versions/{v}/", "/status/",
            f"/submissions/{s['mine'].pk}/", "/accounts/login/", "/accounts/signup/", "/accounts/password_reset/",
            "/admin/login/"]


def private_pages(site) -> list[str]:
    return ["/submit/", "/submissions/", "/accounts/password_change/"]


STAFF_PAGES = ["/admin/", "/admin/leaderboard/submission/", "/admin/axes/accessattempt/"]


def directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_every_response_carries_a_policy_without_unsafe_inline_or_eval(client, alice, site) -> None:
    urls = [*public_pages(site), "/api/v1/leaderboard", "/leaderboard.csv", "/no-such-page/", "/healthz"]
    for url in urls:
        header = client.get(url)["Content-Security-Policy"]
        policy = directives(header)
        assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"], (url, header)
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], url
        assert "'unsafe-inline'" not in header and "'unsafe-eval'" not in header, url
        # The one exception: plotly.js sets style="" (an empty attribute) on colour bars; only that value passes.
        assert policy["style-src-attr"] == ["'unsafe-hashes'", "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"]


def test_no_page_holds_an_inline_script_an_event_handler_or_a_style_attribute(alice, charlie, site) -> None:
    visitor, member, staff = Client(), Client(), Client()
    member.force_login(alice)
    staff.force_login(charlie)
    pages = [(visitor, u) for u in public_pages(site)] + [(member, u) for u in private_pages(site)]
    pages += [(staff, u) for u in STAFF_PAGES] + [(staff, f"/submissions/{site['mine'].pk}/")]
    for who, url in pages:
        response = who.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for rule in (INLINE_SCRIPT, EVENT_HANDLER, STYLE_ATTRIBUTE):
            found = rule.search(html)
            assert found is None, f"{url}: {found.group(0)[:120] if found else ''}"


def test_the_page_checks_would_catch_an_inline_script_a_handler_and_a_style() -> None:
    assert INLINE_SCRIPT.search('<p>x</p><script>alert(1)</script>')
    assert not INLINE_SCRIPT.search('<script src="/static/a.js" defer></script><script type="application/json" id="c">')
    assert EVENT_HANDLER.search('<select name="length" onchange="this.form.submit()">')
    assert STYLE_ATTRIBUTE.search('<td class="num" style="--s:80">')


def test_the_plotly_stylesheet_matches_the_plotly_js_we_serve() -> None:
    from scripts.plotly_css import TARGET, plotly_css

    assert TARGET.read_text() == plotly_css(), "run: .venv/bin/python scripts/plotly_css.py"


@pytest.mark.django_db(transaction=True)
def test_every_page_runs_in_chromium_under_the_policy_without_a_console_error(
        live_server, browser, alice, charlie, site) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    for url in public_pages(site):
        response = page.goto(live_server.url + url)
        assert "script-src 'self'" in response.headers["content-security-policy"], url
        if url == "/" or url.startswith(("/models/", "/compare/", "/?")):
            page.wait_for_selector(".plotly-chart .main-svg")
            drawn, charts = page.locator(".plotly-chart .main-svg").count(), page.locator(".plotly-chart").count()
            assert charts and drawn >= charts, url  # every chart drew (each has two or three svg layers)
    page.goto(live_server.url + f"/models/{site['local'].pk}/")
    page.select_option("select[data-autosubmit]", "1024")  # the handler lives in static/js/site.js
    page.wait_for_url(re.compile(r"length=1024"))

    for user, password in (("alice", "alice-password-1"), ("charlie", "charlie-password-1")):
        page.context.clear_cookies()
        page.goto(live_server.url + "/accounts/login/")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("form.stacked button[type=submit]")
        for url in private_pages(site) + (STAFF_PAGES if user == "charlie" else []):
            assert page.goto(live_server.url + url).status == 200, url
    page.goto(live_server.url + "/submit/")
    page.check("input[name=kind][value=huggingface]")  # the form's own script still runs
    assert page.is_hidden("fieldset[data-kind=endpoint]")
    assert browser.take_problems() == []

    # The watch itself: an inline script added to a page is refused by the policy and reported.
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                  " document.body.appendChild(s); }")
    page.wait_for_timeout(200)
    assert page.evaluate("window.ran === undefined")
    problems = browser.take_problems()
    assert problems and "Content Security Policy" in problems[0], problems
