"""A length column means what it says: prompts are sized in the model's own tokens, on any tokenizer.

Servers whose tokenizers differ from the probe's prose estimate (every digit a token; a long chat template; a
tokenize route; no usage at all) get prompts within 2% below their target, or a cell that says why not.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from evalworkers.prompt_sizing import prompt_token_mismatch
from leaderboard import rows, versioning
from leaderboard.models import LeaderboardRow, Submission, SubmissionStatus, TaskSpec
from tests.factories import endpoint_submission, make_version, run_inline
from tests.fake_openai import FakeCall, FakeOpenAI

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # slow: real HTTP servers (the fake endpoint) and tokenizers

LENGTH = 4096

#: One task per kind of haystack the generator writes, with the kind's name.
HAYSTACKS = {
    "noise": ("niah_single", {"haystack": "noise", "key_type": "words", "value_type": "numbers"}),
    "numbers": ("niah_multikey", {"haystack": "needles", "key_type": "words", "value_type": "numbers",
                                  "num_keys": 1}),
    "uuids": ("niah_multikey", {"haystack": "needles", "key_type": "uuids", "value_type": "uuids", "num_keys": 1}),
    "prose": ("niah_single", {"haystack": "prose", "key_type": "words", "value_type": "numbers"}),
    "words": ("common_words", {"num_cw": 10, "freq_cw": 30, "freq_ucw": 3}),
    "code_like": ("variable_tracking", {"num_chains": 1, "num_hops": 4, "haystack": "noise"}),
    "documents": ("synthetic_qa", {"hops": 1}),
}


def haystack_version(slug: str) -> None:
    version = make_version(slug, tasks=0, lengths=[LENGTH], samples_per_cell=3)
    for kind, (task_type, params) in HAYSTACKS.items():
        spec = TaskSpec(version=version, key=kind, task_type=task_type, params=params, max_new_tokens=64)
        spec.full_clean()
        spec.save()
    versioning.publish(version)


def evaluate(server: FakeOpenAI, slug: str, *extra: str) -> dict[str, dict]:
    out = StringIO()
    call_command("evaluate", "--endpoint", server.base_url, "--model", "m", "--version", slug, "--json", *extra,
                 stdout=out, stderr=StringIO())
    return {c["task"]: c for c in json.loads(out.getvalue())}


def shortfall_percent(cell: dict) -> float:
    target = LENGTH - 64
    return round(100 * (target - cell["prompt_tokens_mean"]) / target, 2)


def assert_within_two_percent_below(cells: dict[str, dict], sizing: str) -> None:
    for kind, cell in cells.items():
        assert cell["sizing"] == sizing, kind
        assert cell["errors"] == 0, (kind, cell["top_error"])
        assert 0.0 <= shortfall_percent(cell) <= 2.0, (kind, cell["prompt_tokens_mean"])
        assert cell["prompt_token_mismatch"] is False, kind


def test_a_digit_splitting_server_gets_every_haystack_kind_within_two_percent_below_its_target() -> None:
    haystack_version("digits")
    with FakeOpenAI(models=("m",), digits_as_tokens=True, max_model_len=LENGTH) as server:
        cells = evaluate(server, "digits")
        longest = max(r.usage["prompt_tokens"] for r in server.generation_requests if r.usage)
    print("shortfall % by haystack kind (digits as tokens, calibrated):",
          {k: shortfall_percent(c) for k, c in cells.items()})
    assert_within_two_percent_below(cells, "calibrated")
    assert longest <= LENGTH - 64  # no request, calibration included, ran over the window


@pytest.mark.parametrize("route", ["vllm", "llama.cpp", "tgi"])
def test_a_server_with_a_tokenize_route_is_sized_with_it_exactly(route: str) -> None:
    haystack_version(f"tok-{route.replace('.', '')}")
    with FakeOpenAI(models=("m",), digits_as_tokens=True, tokenize=route) as server:
        cells = evaluate(server, f"tok-{route.replace('.', '')}")
        assert server.count("/tokenize") > len(HAYSTACKS)
    assert_within_two_percent_below(cells, "server_tokenizer")


def test_a_long_chat_template_is_reserved_not_counted_as_context() -> None:
    haystack_version("template")
    with FakeOpenAI(models=("m",), message_overhead_tokens=300) as server:
        cells = evaluate(server, "template")
    assert_within_two_percent_below(cells, "calibrated")


def test_a_server_that_reports_no_usage_has_its_lengths_marked_unverified_not_flagged() -> None:
    haystack_version("nousage")
    with FakeOpenAI(models=("m",), report_usage=False, stream_usage=False) as server:
        cells = evaluate(server, "nousage")
    for cell in cells.values():
        assert cell["sizing"] == "unverified"
        assert cell["prompt_tokens_mean"] is None and cell["prompt_token_mismatch"] is False


def test_the_flag_is_raised_over_the_target_or_more_than_two_percent_below_it_only() -> None:
    assert not prompt_token_mismatch(3968, 3968)
    assert not prompt_token_mismatch(3890, 3968)  # 1.97% short
    assert prompt_token_mismatch(3888, 3968)  # 2.02% short
    assert prompt_token_mismatch(3969, 3968)  # over the window
    assert not prompt_token_mismatch(368, 384)  # 16 tokens short: the generator's smallest step
    assert not prompt_token_mismatch(970, 992)  # 22 short at 1K: that step plus the estimate's margin
    assert prompt_token_mismatch(359, 384)


# --- on the board ----------------------------------------------------------------------------------------

def evaluated(server: FakeOpenAI, slug: str) -> Submission:
    """A submission of ``server`` on a fresh two-length version, run to its end by the runner, rows computed."""
    sub = run_inline(endpoint_submission(server.base_url, slug, model="m", lengths=(512, 1024), samples=3,
                                         tasks=2))
    rows.recompute(sub.pk)
    return sub


def test_a_cell_whose_prompts_missed_their_length_is_kept_off_its_column_with_the_reason(client) -> None:
    with FakeOpenAI(models=("m",)) as server:
        def tokenizer_changes_after_calibration(call: FakeCall) -> str:
            if call.max_tokens != 1 and call.prompt.count("special magic"):
                server.chars_per_token = 3.0  # every sample now counts a third more than it was sized for
            return "I don't know."

        server.answer = tokenizer_changes_after_calibration
        sub = evaluated(server, "missed")
    assert sub.status == SubmissionStatus.COMPLETED
    flagged = sub.cells.filter(prompt_token_mismatch=True)
    assert flagged.exists()
    row = LeaderboardRow.objects.get(submission=sub)
    for cell in flagged:
        assert row.scores_by_length[str(cell.length)] is None
        assert "the model's server counted" in row.length_notes[str(cell.length)]
    assert row.effective_length is None or row.effective_length < min(c.length for c in flagged)
    page = client.get("/?version=missed").content.decode()
    assert "Not this length: niah_0: the model&#x27;s server counted" in page
    api = client.get("/api/v1/leaderboard?version=missed").json()
    assert api["rows"][0]["length_notes"] == row.length_notes


def test_a_server_without_usage_makes_its_row_say_lengths_are_unverified(client) -> None:
    with FakeOpenAI(models=("m",), report_usage=False, stream_usage=False) as server:
        sub = evaluated(server, "unverified")
    assert set(sub.cells.values_list("sizing", flat=True)) == {"unverified"}
    row = LeaderboardRow.objects.get(submission=sub)
    assert row.lengths_verified is False and not row.length_notes
    assert "lengths unverified" in client.get("/?version=unverified").content.decode()
    assert "estimated; unverified" in client.get(f"/models/{sub.pk}/").content.decode()


def test_evaluate_refuses_lengths_too_short_for_a_task_and_a_tokenizer_hint_it_cannot_load_before_any_request(
) -> None:
    make_version("short", publish=True, lengths=[512], samples_per_cell=1)
    with FakeOpenAI(models=("m",)) as server:
        with pytest.raises(CommandError, match=r"--lengths: 100 tokens is too short on short \(niah_0 needs at least"):
            call_command("evaluate", "--endpoint", server.base_url, "--model", "m", "--version", "short",
                         "--lengths", "100", stdout=StringIO())
        with pytest.raises(CommandError, match="--tokenizer-hint: no tokenizer 'nobody/no-such-tokenizer'"):
            call_command("evaluate", "--endpoint", server.base_url, "--model", "m", "--version", "short",
                         "--tokenizer-hint", "nobody/no-such-tokenizer", stdout=StringIO())
        assert server.count() == 0
