"""Cost before commitment: requests, prompt tokens and duration, computed from a version's spec and a measured speed."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from leaderboard import cost
from leaderboard.models import BenchmarkVersion, Cell, CellStatus, SampleResult, SubmissionStatus
from tests.factories import make_default_version, make_entry, make_submission, make_version
from tests.test_leaderboard_browser import browser  # noqa: F401  (the Chromium fixture)

pytestmark = pytest.mark.django_db

V1_LENGTHS = [4096, 8192, 16384, 32768, 65536, 131072]
V1_NEW_TOKENS = {"niah_single_1": 128, "niah_single_2": 128, "niah_single_3": 128, "niah_multikey_1": 128,
                 "niah_multikey_2": 128, "niah_multikey_3": 128, "niah_multivalue": 128, "niah_multiquery": 128,
                 "vt": 30, "cwe": 120, "fwe": 50, "qa_1": 32, "qa_2": 32, "ancestral_trace": 32}


def seeded(slug: str) -> BenchmarkVersion:
    call_command("seed_versions", stdout=StringIO(), stderr=StringIO())
    return BenchmarkVersion.objects.get(slug=slug)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def timed(sub, pairs: list[tuple[int, float]]) -> None:
    """Stored samples of a full-cache cell of `sub` with (prompt tokens, seconds) each."""
    cell = Cell.objects.create(submission=sub, task=sub.version.tasks.first(), length=sub.version.lengths[0],
                               status=CellStatus.RUNNING, samples_total=len(pairs), samples_done=len(pairs))
    SampleResult.objects.bulk_create([SampleResult(cell=cell, index=i, score=100.0, prompt_tokens=p, latency_s=s)
                                      for i, (p, s) in enumerate(pairs)])


def test_one_endpoint_submission_on_the_seeded_v1_sends_8400_requests_and_360_million_prompt_tokens() -> None:
    v1 = seeded("v1")
    assert sorted(v1.lengths) == V1_LENGTHS and dict(v1.tasks.values_list("key", "max_new_tokens")) == V1_NEW_TOKENS
    estimate = cost.estimate(v1, kind="endpoint")
    assert estimate.requests == 14 * 6 * 100 == 8400 and estimate.cells == 84
    # 14 tasks x 100 samples x (4K + ... + 128K), less each task's new tokens at each length
    assert estimate.prompt_tokens == 100 * (14 * sum(V1_LENGTHS) - 6 * sum(V1_NEW_TOKENS.values())) == 360_475_200
    assert estimate.new_tokens_max == 100 * 6 * sum(V1_NEW_TOKENS.values()) == 792_000
    assert estimate.prompt_tokens_text == "360,475,200 tokens (about 360 million)"
    assert estimate.duration_s is None and "unknown until the endpoint is probed" in estimate.duration_basis
    assert [c.length for c in estimate.by_length] == V1_LENGTHS
    assert estimate.by_length[-1].prompt_tokens == 100 * (14 * 131072 - sum(V1_NEW_TOKENS.values()))


def test_a_reasoning_version_counts_the_thinking_budget_as_new_tokens_not_prompt() -> None:
    v2r = seeded("v2-reasoning")
    plain = seeded("v2")
    reasoning, direct = cost.estimate(v2r, kind="endpoint"), cost.estimate(plain, kind="endpoint")
    per_task_new = sum(plain.tasks.values_list("max_new_tokens", flat=True))
    assert reasoning.new_tokens_max == 100 * 5 * (per_task_new + 14 * 4096)
    assert reasoning.prompt_tokens == 100 * (14 * sum(v2r.lengths) - 5 * (per_task_new + 14 * 4096))
    assert direct.prompt_tokens == 100 * (14 * sum(plain.lengths) - 6 * per_task_new)


def test_a_local_model_runs_the_grid_once_per_kv_point_and_an_endpoint_only_once() -> None:
    version = make_version("kv", publish=True, tasks=2, lengths=[512, 1024], samples_per_cell=3,
                           kv_methods=["full", "snapkv", "streaming_llm"], kv_budgets=[1.0, 0.5, 0.25])
    one = cost.estimate(version, kind="huggingface")
    grid = cost.offered_grid(version)
    assert len(grid) == 5 and grid[0] == ("full", 1.0)
    every = cost.estimate(version, kind="huggingface", grid_points=grid)
    assert one.requests == 2 * 2 * 3 and one.prompt_tokens == 3 * 2 * ((512 - 32) + (1024 - 32))
    assert every.requests == 5 * one.requests and every.prompt_tokens == 5 * one.prompt_tokens
    assert every.cells == 2 * 2 * 5
    assert cost.estimate(version, kind="endpoint", grid_points=grid).requests == one.requests


def test_reported_results_cost_nothing() -> None:
    estimate = cost.estimate(make_version("rep", tasks=2), kind="reported")
    assert estimate.requests == estimate.prompt_tokens == estimate.new_tokens_max == 0
    assert estimate.duration_s == 0 and "imported" in estimate.duration_basis


def test_a_submission_of_a_local_model_is_estimated_on_the_kv_points_it_asked_for() -> None:
    version = make_version("kv", publish=True, lengths=[512, 1024], samples_per_cell=3,
                           kv_methods=["full", "snapkv", "streaming_llm"], kv_budgets=[1.0, 0.5, 0.25])
    sub = make_submission(version=version, model=make_entry(kind="huggingface", hf_repo="org/model"),
                          kv_methods=["snapkv"], kv_budgets=[0.5, 0.25])
    assert cost.grid_for(sub) == (("full", 1.0), ("snapkv", 0.5), ("snapkv", 0.25))
    estimate = cost.for_submission(sub)
    assert estimate.requests == 3 * cost.estimate(version, kind="huggingface").requests
    assert estimate.duration_s is None and estimate.duration_basis == cost.UNKNOWN_LOCAL


def test_without_a_probe_or_timed_requests_the_duration_is_unknown() -> None:
    sub = make_submission(version=make_version("t1", publish=True))
    assert cost.speed_for(sub) is None
    assert cost.for_submission(sub).duration_text == ""


def test_the_probes_round_trip_gives_a_lower_bound_on_the_duration(settings) -> None:
    settings.EVAL_CONCURRENCY = 4
    sub = make_submission(version=make_version("t1", publish=True, samples_per_cell=8),
                          probe_result={"ok": True, "code": "ok", "latency_s": 2.0})
    speed = cost.speed_for(sub)
    assert speed is not None and speed.is_lower_bound and speed.in_flight == 4
    estimate = cost.for_submission(sub)
    assert estimate.requests == 16 and estimate.duration_s == 16 * 2.0 / 4
    assert estimate.duration_is_lower_bound and estimate.duration_text == "at least 8 seconds"
    assert "pre-flight probe's round trip of 2.00 s" in estimate.duration_basis
    failed = make_submission(version=sub.version, probe_result={"ok": False, "code": "timeout", "latency_s": 9.0})
    assert cost.speed_for(failed) is None


def test_timed_requests_measure_the_overhead_and_the_prompt_rate(settings) -> None:
    settings.EVAL_CONCURRENCY = 2
    version = make_version("t1", publish=True, lengths=[1000, 2000], samples_per_cell=10)
    sub = make_submission(version=version, status=SubmissionStatus.RUNNING,
                          probe_result={"ok": True, "code": "ok", "latency_s": 0.1})
    # exactly 0.5 s + 1 s per 1,000 prompt tokens
    timed(sub, [(1000, 1.5), (2000, 2.5), (4000, 4.5), (3000, 3.5)])
    speed = cost.speed_for(sub)
    assert speed is not None and not speed.is_lower_bound
    assert speed.overhead_s == pytest.approx(0.5) and speed.prompt_tokens_per_s == pytest.approx(1000)
    estimate = cost.for_submission(sub)
    expected = (20 * 0.5 + estimate.prompt_tokens / 1000) / 2
    assert estimate.prompt_tokens == 10 * (968 + 1968) and estimate.duration_s == pytest.approx(expected)
    assert "measured on 4 timed requests of this submission" in estimate.duration_basis
    assert "1,000 prompt tokens/s" in estimate.duration_basis


def test_a_new_run_of_a_model_is_timed_by_its_earlier_runs_until_it_has_its_own() -> None:
    version = make_version("t1", publish=True)
    entry = make_entry()
    earlier = make_submission(version=version, model=entry, status=SubmissionStatus.COMPLETED)
    timed(earlier, [(500, 1.0), (500, 1.0), (500, 1.0)])
    rerun = make_submission(version=version, model=entry)
    speed = cost.speed_for(rerun)
    assert speed is not None and "earlier runs of this model" in speed.basis
    assert speed.overhead_s == 0 and speed.prompt_tokens_per_s == pytest.approx(500)
    assert cost.speed_for(make_submission(version=version)) is None  # another model's samples do not count


def test_the_estimate_is_plain_json_for_the_admin_and_scripts() -> None:
    data = cost.estimate(make_version("t1", tasks=2), kind="endpoint").as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["grid_points"] == [["full", 1.0]] and data["requests"] == 2 * 2 * 3


def test_the_version_page_states_what_one_submission_sends_with_units(client) -> None:
    seeded("v1")
    page = text(client.get("/versions/v1/"))
    assert "What one submission sends" in page and "Computed from this version's spec" in page
    assert "<strong>8,400</strong> requests, computed: 14 tasks × 6 lengths × 100 samples per cell" in page
    assert "<strong>360,475,200 tokens (about 360 million)</strong> in total, computed from the lengths" in page
    assert "at most <strong>792,000 tokens</strong>" in page
    assert "unknown until the endpoint is probed" in page
    assert '<th scope="row" class="num">131072</th><td class="num">1,400</td>' in page
    assert "with the full cache and all" in page and "KV points this version offers" in page


def test_the_admin_states_what_one_submission_sends_before_publishing(client, charlie) -> None:
    draft = make_version("costly", publish=False, tasks=2, lengths=[512, 1024], samples_per_cell=10)
    client.force_login(charlie)
    page = text(client.get(f"/admin/leaderboard/benchmarkversion/{draft.pk}/change/"))
    assert "What one submission sends" in page
    assert "<strong>40</strong> requests, computed: 2 tasks × 2 lengths × 10 samples per cell" in page


def test_the_submit_form_shows_each_versions_cost_and_hands_it_to_its_script_as_data(client, alice) -> None:
    version = make_default_version("t1", tasks=2, samples_per_cell=5, kv_methods=["full", "snapkv"],
                                   kv_budgets=[1.0, 0.5])
    client.force_login(alice)
    response = client.get("/submit/")
    page = text(response)
    assert "What it will send" in page and "Computed from each version's spec" in page
    assert '<tr data-version="t1"><th scope="row">t1</th><td class="num">20</td>' in page
    assert "unknown until the endpoint is probed" in page
    data = json.loads(re.search(r'<script id="cost-data" type="application/json">(.*?)</script>',
                                response.content.decode(), re.S).group(1))
    estimate = cost.estimate(version, kind="endpoint")
    assert data == {"t1": {"requests": 20, "prompt_tokens": estimate.prompt_tokens, "new_tokens_max": 2 * 2 * 5 * 32,
                           "offered": {"snapkv": [0.5]}}}
    scripts = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", response.content.decode())
    assert scripts == []  # no inline code: data only, read by static/js/submit-form.js


def test_the_owner_sees_the_expected_duration_at_the_measured_speed_and_the_public_does_not(
        client, alice, bob, settings) -> None:
    settings.EVAL_CONCURRENCY = 1
    version = make_version("t1", publish=True, lengths=[1000, 2000], samples_per_cell=10)
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.RUNNING,
                          probe_result={"ok": True, "code": "ok", "latency_s": 0.2})
    timed(sub, [(1000, 60.0), (2000, 120.0), (1500, 90.0)])
    client.force_login(alice)
    page = text(client.get(f"/submissions/{sub.pk}/"))
    assert "What it sends" in page and "<strong>20</strong> requests" in page
    # 29,360 prompt tokens at 16.7 tokens/s, one at a time: about 29 minutes
    assert "<strong>about 29 minutes</strong> (estimated; measured on 3 timed requests of this submission" in page
    client.force_login(bob)
    assert "What it sends" not in text(client.get(f"/submissions/{sub.pk}/"))


@pytest.mark.django_db(transaction=True)
def test_the_submit_forms_script_states_the_cost_of_the_chosen_version_kind_and_kv_points(
        live_server, browser, client, alice) -> None:  # noqa: F811  (the fixture imported above)
    make_default_version("t1", tasks=2, samples_per_cell=5, kv_methods=["full", "snapkv", "streaming_llm"],
                         kv_budgets=[1.0, 0.5, 0.25])
    client.force_login(alice)
    context = browser.new_context()
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                          "url": live_server.url}])
    page = context.new_page()
    page.goto(live_server.url + "/submit/")
    chosen = page.locator("#cost-chosen")
    assert chosen.is_visible()
    assert chosen.inner_text() == ("Your choice on t1, computed: 20 requests, 14,720 prompt tokens (upper bound), "
                                   "at most 640 new tokens. Expected duration: unknown until the endpoint is probed.")
    page.check("input[name=kind][value=huggingface]")
    page.check("input[name=kv_methods][value=snapkv]")
    page.check("input[name=kv_methods][value=streaming_llm]")
    page.check("input[name=kv_budgets][value='0.5']")
    page.check("input[name=kv_budgets][value='0.25']")
    assert chosen.inner_text().startswith("Your choice on t1 (5 KV points, the full cache included), computed: "
                                          "100 requests, 73,600 prompt tokens")
    context.close()
