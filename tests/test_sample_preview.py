"""Seeing a version's samples before and after publishing: the prompt with its inserted facts highlighted and its
haystack folded, the expected answer, the measured prompt tokens and the scoring rule; public for browsable
versions, staff-only for drafts."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest
from django.conf import settings

from evalworkers.backends import reference
from evalworkers.benchmark import HFTokenCounter
from tests.factories import make_version
from tests.test_leaderboard_browser import ARTIFACTS, browser  # noqa: F401  (the headless Chromium fixture)

pytestmark = pytest.mark.django_db


def reference_count(text: str) -> int:
    path = reference.folder(Path(settings.EVAL_MODELS_DIR)) / "tokenizer.json"
    assert path.is_file(), "the reference model is prepared by `make test`"
    return HFTokenCounter.from_file(path).count(text)


def prompt_of(preview) -> str:
    context = "".join(s.text for s in preview.segments)
    return f"{preview.instruction}\n{context}\n{preview.question} {preview.answer_prefix}"


def test_the_admin_preview_shows_a_prompt_of_its_measured_length_with_the_answer_in_its_needle(client,
                                                                                              charlie) -> None:
    version = make_version(lengths=[1024, 2048])
    client.force_login(charlie)
    response = client.get(f"/admin/leaderboard/benchmarkversion/{version.pk}/preview/",
                          {"task": "niah_0", "length": 2048, "index": 2})
    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview.counter_exact
    assert preview.target_tokens == 2048 - 32
    assert preview.target_tokens - preview.tolerance <= preview.measured_tokens <= preview.target_tokens
    assert reference_count(prompt_of(preview)) == preview.measured_tokens  # what is shown is what was counted
    [answer] = preview.answers
    needles = [s for s in preview.segments if s.kind == "insert"]
    assert len(needles) == 1 and answer in needles[0].text and "asked" in needles[0].label
    page = response.content.decode()
    assert re.search(r'<mark class="insert">[^<]*' + re.escape(answer), page)
    assert '<details class="haystack">' in page and "string_match_all" in page
    assert "within tolerance" in page


def test_a_different_index_or_length_is_a_different_sample(client, charlie) -> None:
    version = make_version(lengths=[1024, 2048])
    client.force_login(charlie)
    url = f"/admin/leaderboard/benchmarkversion/{version.pk}/preview/"
    first = client.get(url, {"task": "niah_0", "length": 1024, "index": 0}).context["preview"]
    again = client.get(url, {"task": "niah_0", "length": 1024, "index": 0}).context["preview"]
    other = client.get(url, {"task": "niah_0", "length": 1024, "index": 1}).context["preview"]
    longer = client.get(url, {"task": "niah_0", "length": 2048, "index": 0}).context["preview"]
    assert first.segments == again.segments
    assert first.answers != other.answers
    assert longer.measured_tokens > first.measured_tokens


def test_a_task_without_inserts_shows_how_often_each_answer_occurs(client, charlie) -> None:
    from leaderboard.models import TaskSpec

    version = make_version(tasks=0, lengths=[2048])
    TaskSpec.objects.create(version=version, key="cwe", task_type="common_words", params={}, max_new_tokens=120)
    client.force_login(charlie)
    response = client.get(f"/admin/leaderboard/benchmarkversion/{version.pk}/preview/")
    preview = response.context["preview"]
    assert preview.insert_count == 0 and [s.kind for s in preview.segments] == ["haystack"]
    assert all(count >= 2 for count in preview.answer_counts.values())
    assert "the answer is spread over the whole context" in response.content.decode()


def test_a_draft_is_previewed_by_staff_only(client, charlie, alice) -> None:
    version = make_version()
    assert client.get(f"/versions/{version.slug}/samples/").status_code == 404
    client.force_login(alice)
    assert client.get(f"/admin/leaderboard/benchmarkversion/{version.pk}/preview/").status_code == 302  # to login
    client.force_login(charlie)
    assert client.get(f"/admin/leaderboard/benchmarkversion/{version.pk}/preview/").status_code == 200


def test_anyone_sees_a_published_versions_samples_read_only_and_escaped(client) -> None:
    version = make_version(publish=True, params={"system_prompt": "<script>alert(1)</script> Answer briefly."})
    response = client.get(f"/versions/{version.slug}/samples/", {"task": "niah_0", "length": 1024, "index": 1})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'method="post"' not in page.split("<main>")[1]
    preview = response.context["preview"]
    assert htmllib.escape(preview.answers[0]) in page
    assert preview.target_tokens - preview.tolerance <= preview.measured_tokens <= preview.target_tokens


@pytest.mark.parametrize(("query", "message"), [
    ({"task": "nope"}, "has no task 'nope'; choose one of niah_0"),
    ({"length": 999}, "has no length 999; choose one of 512, 1024"),
    ({"index": 3}, "Sample indices of 't1' run from 0 to 2"),
    ({"index": "x"}, "whole numbers"),
])
def test_a_choice_the_version_does_not_have_is_explained(client, query: dict, message: str) -> None:
    make_version(publish=True)
    response = client.get("/versions/t1/samples/", query)
    assert response.status_code == 200
    assert message in htmllib.unescape(response.content.decode())
    assert response.context["preview"] is None


def test_the_version_page_links_its_samples_and_shows_params_as_words(client) -> None:
    version = make_version(publish=True, params={"query_aware": False, "reasoning": False})
    page = client.get(f"/versions/{version.slug}/").content.decode()
    assert f'href="/versions/{version.slug}/samples/"' in page
    assert "/samples/?task=niah_0" in page
    assert "{&#x27;" not in page and "haystack noise, key_type words" in page
    assert "query_aware false, reasoning false" in page


@pytest.mark.django_db(transaction=True)
def test_a_visitor_opens_a_sample_from_the_version_page_in_a_browser(live_server, browser) -> None:  # noqa: F811
    version = make_version("web", publish=True, lengths=[1024, 2048])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/versions/{version.slug}/")
    with page.expect_navigation():
        page.click("text=see its samples")
    page.select_option("select[name=length]", "2048")
    page.fill("input[name=index]", "1")
    with page.expect_navigation():
        page.click("form.preview-choice button[type=submit]")
    assert "length=2048" in page.url and "index=1" in page.url
    needle = page.locator("mark.insert").first
    assert needle.is_visible()
    answer = page.locator(".expected code.answer").first.inner_text()
    assert answer and answer in needle.inner_text()
    tokens = int(page.locator("#measured-tokens strong").inner_text().replace(",", ""))
    assert 2048 - 32 - 20 <= tokens <= 2048 - 32
    haystack = page.locator("details.haystack").first
    assert not haystack.locator("pre").is_visible()  # folded
    haystack.locator("summary").click()
    assert haystack.locator("pre").is_visible()
    page.screenshot(path=str(ARTIFACTS / "sample-preview.png"), full_page=False)


@pytest.mark.django_db(transaction=True)
def test_a_curator_clones_changes_a_task_type_and_previews_the_draft_in_a_browser(live_server, browser,  # noqa: F811
                                                                                   client, charlie) -> None:
    from leaderboard.models import BenchmarkVersion

    source = make_version("src", publish=True, lengths=[1024, 2048])
    client.force_login(charlie)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/leaderboard/benchmarkversion/{source.pk}/change/")
    with page.expect_navigation():
        page.click("#frozen-notice button:has-text('Clone into a new draft')")
    draft = BenchmarkVersion.objects.get(cloned_from=source)
    assert page.url.endswith(f"/benchmarkversion/{draft.pk}/change/")
    num_keys = page.locator("input[name='tasks-0-params__niah_multikey__num_keys']")
    assert not num_keys.is_visible()
    page.select_option("select[name='tasks-0-task_type']", "niah_multikey")
    assert num_keys.is_visible()  # static/js/task-params.js shows the chosen type's parameters
    assert not page.locator("select[name='tasks-0-params__niah_single__haystack']").is_visible()
    num_keys.fill("6")
    with page.expect_navigation():
        page.click("input[name='_continue']")
    task = draft.tasks.get()
    assert (task.task_type, task.params["num_keys"]) == ("niah_multikey", 6)
    assert "task changed: niah_0 (type: niah_single -&gt; niah_multikey" in page.content()
    with page.expect_navigation():
        page.click("#draft-notice a:has-text('Preview samples')")
    assert page.locator("mark.insert").count() == 6
    assert page.locator(".insert-label:has-text('asked')").count() == 1
