"""Every real endpoint gets a right, explained score: reasoning models and the OpenAI API's dialects.

A fake server with one switch per behaviour of a real server family, driven through `manage.py evaluate`, the
probe, and a real worker.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from kombu import Connection

from evalworkers.backends import EndpointConfig, probe
from evalworkers.backends.options import OptionsError, validate_request_options
from evalworkers.benchmark import CalibratedCounter, generate_sample
from evalworkers.targets.endpoint import reasoning_advice
from evalworkers.tasks import start_submission
from leaderboard.models import BenchmarkVersion, SampleAnswer, SampleResult, Submission, SubmissionStatus
from tests.conftest import wait_for
from tests.factories import make_default_version, make_entry, make_submission, make_version, submission_post
from tests.fake_openai import FakeCall, FakeOpenAI
from tests.needle_reader import QUESTION, answer_value, expected_score, needle_reader

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # slow: real HTTP servers and a worker process

DECOY = "9921840"
REASONING = {"reasoning": True, "reasoning_extra_tokens": 64}
reader = needle_reader(3)


def needle_of(call: FakeCall) -> str:
    """The value the needle reader would answer, or the decoy when it would not answer right."""
    answer = reader(call)
    return answer if answer.isdigit() else DECOY


def evaluate(*args: str) -> list[dict]:
    out = StringIO()
    call_command("evaluate", *args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def run(server: FakeOpenAI, slug: str, *extra: str, samples: int = 6, **version: object) -> dict:
    make_version(slug, publish=True, lengths=[512], samples_per_cell=samples, **version)
    [cell] = evaluate("--endpoint", server.base_url, "--model", "m", "--version", slug, *extra)
    return cell


def values(server: FakeOpenAI) -> list[str]:
    """The needle values of the cell's samples, as the server saw them (the probe's requests have none, and the
    cell's calibration request asks for one token)."""
    seen = []
    for r in server.generation_requests:
        if 1 in (r.body.get("max_tokens"), r.body.get("max_completion_tokens")):
            continue
        prompt = "\n".join(str(m.get("content") or "") for m in r.body.get("messages", []))
        asked = QUESTION.search(prompt)
        if asked and r.status == 200:
            key = re.escape(asked.group(1))
            seen.append(re.search(rf"special magic \w+ for {key} is: (\S+?)\.(?:\s|$)", prompt).group(1))
    return seen


# --- reasoning is separated from the answer ------------------------------------------------------------

WRAPPED = {
    "think_brackets": lambda r, a: f"[THINK]{r}[/THINK]{a}",
    "think_template_opened": lambda r, a: f"{r}</think>\n{a}",
    "harmony": lambda r, a: f"<|channel|>analysis<|message|>{r}<|end|><|start|>assistant<|channel|>final<|message|>{a}",
    "harmony_plain": lambda r, a: f"analysis{r}assistantfinal{a}",
}


@pytest.mark.parametrize("fmt", sorted(WRAPPED))
def test_reasoning_that_names_the_needle_is_not_credited_when_the_final_answer_is_wrong(fmt: str) -> None:
    wrap = WRAPPED[fmt]
    answer = lambda call: wrap(f"Candidates: {needle_of(call)} and {DECOY}. The second one.", DECOY)  # noqa: E731
    with FakeOpenAI(models=("m",), answer=answer) as server:
        cell = run(server, f"r-{fmt.replace('_', '-')}", **{"params": REASONING})
    assert cell["score"] == 0.0 and cell["n"] == 6 and cell["no_final_answer"] == 0


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_separate_reasoning_field_is_never_scored_and_the_content_is(field: str) -> None:
    with FakeOpenAI(models=("m",), answer=reader, reasoning=lambda call: f"Is it {DECOY}? Let me look.",
                    reasoning_field=field) as server:
        cell = run(server, f"f-{field.replace('_', '-')}", params=REASONING)
        assert cell["score"] == pytest.approx(expected_score(values(server), 3))
    assert cell["reasoning_chars_mean"] == len(f"Is it {DECOY}? Let me look.")


@pytest.mark.parametrize("stream", [True, False])
def test_reasoning_only_replies_cut_off_by_the_limit_are_a_named_outcome_with_their_stop_reason(
        stream: bool, settings) -> None:
    settings.EVAL_STREAM = stream
    with FakeOpenAI(models=("m",), reasoning=lambda call: f"I see {needle_of(call)}. " * 200) as server:
        cell = run(server, f"cut-{int(stream)}", params=REASONING)
    assert cell["score"] == 0.0 and cell["n"] == 6
    assert cell["no_final_answer"] == 6
    assert cell["finish_reasons"] == {"stop": 0, "length": 6, "other": 0}


def test_a_misfired_reasoning_parser_that_puts_the_answer_in_the_reasoning_field_keeps_the_answer() -> None:
    with FakeOpenAI(models=("m",), answer=lambda call: "", reasoning=reader) as server:
        cell = run(server, "misfire", params=REASONING)
        assert cell["score"] == pytest.approx(expected_score(values(server), 3))
    assert cell["no_final_answer"] == 0


def test_a_reasoning_model_on_a_version_without_a_reasoning_budget_fails_the_probe_saying_what_to_do(
        client) -> None:
    make_version("noreason", publish=True, lengths=[512], samples_per_cell=2)
    make_version("withreason", publish=True, lengths=[512], samples_per_cell=2, params=REASONING)
    assert "not expected: a model that reasons is refused" in client.get("/versions/noreason/").content.decode()
    assert "each task allows 64 more new tokens for thinking" in client.get("/versions/withreason/").content.decode()
    with FakeOpenAI(models=("m",), reasoning=lambda call: "Hmm, let me think.") as server, \
            pytest.raises(CommandError) as refused:
        evaluate("--endpoint", server.base_url, "--model", "m", "--version", "noreason")
    message = str(refused.value)
    assert "reasoning_without_budget" in message and "field:reasoning_content" in message
    assert '"enable_thinking": false' in message and "'withreason'" in message
    assert "32 new tokens" in message


def test_a_chat_model_that_thinks_without_markers_is_caught_and_a_rambling_completions_model_is_not() -> None:
    rambling = "Okay, so the user wants one word. Let me think about which word. " * 40
    with FakeOpenAI(models=("m",), answer=lambda call: rambling) as server:
        chat = probe(EndpointConfig(base_url=server.base_url, model="m"), 1024, retry_window_s=0)
        completions = probe(EndpointConfig(base_url=server.base_url, model="m", api_mode="completions"), 1024,
                            retry_window_s=0)
    assert chat.code == "reasoning_without_budget" and "no one-word answer within 256 tokens" in chat.message
    assert completions.ok, completions.message


def test_turning_thinking_off_with_a_request_option_reaches_the_server_and_passes_the_probe() -> None:
    def thinks_unless_told(call: FakeCall) -> str:
        off = (call.body.get("chat_template_kwargs") or {}).get("enable_thinking") is False
        return "" if off else "Let me think about it."

    with FakeOpenAI(models=("m",), answer=reader, reasoning=thinks_unless_told) as server:
        cell = run(server, "thinkoff", "--request-options", '{"chat_template_kwargs": {"enable_thinking": false}}')
        assert all(r.body["chat_template_kwargs"] == {"enable_thinking": False} for r in server.generation_requests)
        assert cell["score"] == pytest.approx(expected_score(values(server), 3))
    assert cell["reasoning_chars_mean"] is None


def test_request_options_outside_the_allowlist_are_refused_each_by_name() -> None:
    with pytest.raises(OptionsError) as refused:
        validate_request_options({"temperature": 0.7, "logit_bias": {}, "top_k": 0,
                                  "chat_template_kwargs": {"enable_thinking": "no", "custom": 1}})
    problems = " ".join(refused.value.problems)
    assert "temperature cannot be set: decoding is greedy" in problems
    assert "logit_bias is not an allowed option" in problems
    assert "top_k must be a whole number" in problems
    assert "chat_template_kwargs.enable_thinking must be true or false" in problems
    assert "chat_template_kwargs.custom is not allowed" in problems
    assert validate_request_options({"reasoning_effort": "low", "top_k": 20}) == {"reasoning_effort": "low",
                                                                                  "top_k": 20}
    make_version("opts", publish=True, lengths=[512], samples_per_cell=1)
    with pytest.raises(CommandError, match="temperature cannot be set"):
        evaluate("--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--version", "opts",
                 "--request-options", '{"temperature": 1}')


# --- dialects are learned by the probe and used for every request ----------------------------------------

@pytest.mark.parametrize("stream", [True, False])
def test_a_server_that_refuses_max_tokens_is_evaluated_with_max_completion_tokens(stream: bool, settings) -> None:
    settings.EVAL_STREAM = stream
    with FakeOpenAI(models=("m",), answer=reader, refuse_fields=("max_tokens",)) as server:
        cell = run(server, f"mct-{int(stream)}")
        scored = [r for r in server.generation_requests if r.status == 200]
        assert scored and all("max_completion_tokens" in r.body and "max_tokens" not in r.body for r in scored)
        assert cell["score"] == pytest.approx(expected_score(values(server), 3))
    assert cell["errors"] == 0


def test_a_server_that_refuses_stream_options_is_evaluated_without_them(settings) -> None:
    # Without stream_options this server streams no usage; it reports usage unstreamed, so that is preferred.
    settings.EVAL_STREAM = True
    with FakeOpenAI(models=("m",), answer=reader, refuse_fields=("stream_options",)) as server:
        cell = run(server, "nso")
        scored = [r for r in server.generation_requests if r.status == 200]
        assert scored and all("stream_options" not in r.body for r in scored)
        assert cell["score"] == pytest.approx(expected_score(values(server), 3))
    assert cell["errors"] == 0 and cell["n"] == 6 and cell["prompt_tokens_mean"] > 0


def test_a_server_refusing_both_token_fields_fails_with_what_was_tried() -> None:
    config = EndpointConfig(base_url="http://127.0.0.1:9", model="m")
    with FakeOpenAI(models=("m",), refuse_fields=("max_tokens", "max_completion_tokens")) as server:
        result = probe(EndpointConfig(**{**_fields(config), "base_url": server.base_url}), 1024, timeout_s=5)
    assert result.code == "rejected"
    assert "Already tried: max_completion_tokens sent instead of max_tokens" in result.message


def _fields(config: EndpointConfig) -> dict:
    return {"base_url": config.base_url, "model": config.model}


@pytest.mark.parametrize(("switches", "expected"), [
    ({"streams": False}, {"stream": False, "streams": False, "reports_usage": True}),
    ({"stream_usage": False}, {"stream": False, "streams": True, "reports_usage": True}),
    ({"report_usage": False}, {"stream": True, "streams": True, "reports_usage": False}),
])
def test_the_probe_remembers_whether_a_server_streams_and_reports_usage(switches: dict, expected: dict) -> None:
    with FakeOpenAI(models=("m",), **switches) as server:
        result = probe(EndpointConfig(base_url=server.base_url, model="m", stream=True), 1024, timeout_s=5)
    assert result.ok, result.message
    assert {k: result.dialect[k] for k in expected} == expected


def test_one_429_with_retry_after_during_the_probe_is_waited_out_within_the_default_window() -> None:
    with FakeOpenAI(models=("m",)) as server:
        server.fail_next(1, status=429, retry_after="1")
        started = time.monotonic()
        result = probe(EndpointConfig(base_url=server.base_url, model="m"), 1024)
    assert result.ok and result.tries == 2
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize("fault", ["503", "drop", "slow"])
def test_one_transient_failure_during_the_probe_is_retried(fault: str) -> None:
    with FakeOpenAI(models=("m",)) as server:
        if fault == "503":
            server.fail_next(1, status=503)
        elif fault == "drop":
            server.drop_next(1)
        else:
            server.slow_next(1, delay_s=3.0)
        result = probe(EndpointConfig(base_url=server.base_url, model="m"), 1024, timeout_s=1.5)
    assert result.ok, result.message
    assert result.tries == 2


def test_a_refused_key_fails_the_probe_at_once_without_retrying() -> None:
    with FakeOpenAI(models=("m",), api_key="sk-right-key-000") as server:
        started = time.monotonic()
        result = probe(EndpointConfig(base_url=server.base_url, model="m", api_key="sk-wrong-key-000"), 1024)
    assert result.code == "auth" and result.tries == 1
    assert time.monotonic() - started < 5


def test_a_model_listed_by_the_server_but_refused_on_generation_is_explained_without_contradiction() -> None:
    with FakeOpenAI(models=("m",), refuse_listed_model=True) as server:
        result = probe(EndpointConfig(base_url=server.base_url, model="m"), 1024, retry_window_s=0)
    assert result.code == "unknown_model"
    assert "lists 'm' among its models" in result.message and "refused to generate with it" in result.message
    assert "does not know" not in result.message


# --- through a real worker, onto the pages ----------------------------------------------------------------

def reasoning_model(call: FakeCall) -> str:
    """Reasons in [THINK] blocks; on samples the needle reader gets wrong it thinks until cut off."""
    answer = reader(call)
    if answer.isdigit():
        return f"[THINK]Not {DECOY}; the text says {answer}.[/THINK]{answer}"
    if "ready" in call.prompt:
        return "[THINK]A one-word reply.[/THINK]ready"
    return f"[THINK]Looking for the value; {DECOY} is not it. " + "Still reading. " * 200


@pytest.mark.django_db(transaction=True)
def test_a_reasoning_models_submission_records_answers_stop_reasons_and_reasoning_through_a_real_worker(
        require_postgres, redis_url, start_worker, client) -> None:
    version = make_version("reasoning", publish=True, lengths=[512, 1024], samples_per_cell=6, params=REASONING)
    with FakeOpenAI(models=("m",), answer=reasoning_model, refuse_fields=("max_tokens",)) as server:
        sub = make_submission(version=version, model=make_entry(endpoint_url=server.base_url, api_model_name="m"),
                              request_options={"reasoning_effort": "low"})
        worker = start_worker(redis_url, extra_env={"EVAL_PROBE_TIMEOUT_S": "5"})
        with Connection(redis_url) as conn:
            start_submission.apply_async(args=[sub.pk], connection=conn)
        wait_for(lambda: Submission.objects.get(pk=sub.pk).status in SubmissionStatus.ended(), 120,
                 "the submission to end", worker.output)
        generated = [r for r in server.generation_requests if r.status == 200]
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    assert sub.dialect["max_tokens_field"] == "max_completion_tokens"
    assert sub.dialect["reasoning"] == "think_brackets"
    assert all(r.body["reasoning_effort"] == "low" and "max_completion_tokens" in r.body for r in generated)
    for cell in sub.cells.all():
        rows = list(cell.samples.order_by("index"))
        wrong = [r for r in rows if not answer_value(r.expected[0], 3)]
        assert cell.score == pytest.approx(expected_score([r.expected[0] for r in rows], 3))
        assert cell.no_final_answer == cell.finish_length == len(wrong)
        assert cell.finish_stop == len(rows) - len(wrong)
        assert all(r.answer_outcome == SampleAnswer.CUT_OFF_WHILE_REASONING and r.prediction == ""
                   and r.finish_reason == "length" for r in wrong)
        assert all(r.reasoning_chars > 0 and r.answer_found_by == "think_brackets" and DECOY not in r.prediction
                   for r in rows)
    assert SampleResult.objects.filter(cell__submission=sub, answer_outcome=SampleAnswer.CUT_OFF_WHILE_REASONING
                                       ).exists()

    page = client.get(f"/models/{sub.pk}/").content.decode()
    assert "no final answer: stopped while reasoning" in page
    assert "had no final answer" in page and "at the token limit" in page
    assert "replies reasoned before answering" in page
    assert "max_completion_tokens sent instead of max_tokens" in page
    assert "reasoning_effort" in page
    exported = list(csv.DictReader(io.StringIO(client.get(f"/models/{sub.pk}/samples.csv").getvalue().decode())))
    assert {r["answer_outcome"] for r in exported} == {"answered", "cut_off_while_reasoning"}
    assert {r["finish_reason"] for r in exported} == {"stop", "length"}
    api = client.get(f"/api/v1/submissions/{sub.pk}").json()
    assert sum(c["no_final_answer"] for c in api["cells"]) == sum(c.no_final_answer for c in sub.cells.all()) > 0
    assert api["request_options"] == {"reasoning_effort": "low"}


def test_request_options_from_the_form_are_kept_with_the_submission_and_bad_ones_are_refused_on_the_field(
        client, alice) -> None:
    make_default_version("t1")
    client.force_login(alice)
    refused = client.post("/submit/", submission_post(request_options='{"temperature": 1, "top_k": 20}'))
    errors = refused.context["form"].errors["request_options"]
    assert errors == ["temperature cannot be set: decoding is greedy (temperature 0) for every model, so runs are "
                      "comparable."]
    broken = client.post("/submit/", submission_post(request_options='{"top_k": 20'))
    assert "This is not valid JSON" in broken.context["form"].errors["request_options"][0]
    assert not Submission.objects.exists()
    client.post("/submit/", submission_post(request_options='{"chat_template_kwargs": {"enable_thinking": false}}'))
    sub = Submission.objects.get()
    assert sub.request_options == {"chat_template_kwargs": {"enable_thinking": False}}


def test_the_seeded_reasoning_version_builds_every_task_with_its_thinking_budget_and_is_named_to_reasoners() -> None:
    call_command("seed_versions", stdout=StringIO())
    version = BenchmarkVersion.objects.get(slug="v2-reasoning")
    assert version.reasoning_extra_tokens == 4096 and not version.is_default
    shortest = min(version.lengths)
    for task in version.tasks.all():
        sample = generate_sample(seed=version.seed, task_key=task.key, task_type=task.task_type, params=task.params,
                                 length=shortest, index=0, counter=CalibratedCounter(4.0),
                                 max_new_tokens=task.max_new_tokens, options=version.render_options)
        assert sample.max_new_tokens == task.max_new_tokens + 4096 and sample.answer_prefix == ""
        assert (shortest - sample.max_new_tokens) * 0.98 <= sample.prompt_tokens <= shortest - sample.max_new_tokens
    assert "'v2-reasoning'" in reasoning_advice(BenchmarkVersion.objects.get(slug="v2"))


def test_reasoning_a_server_keeps_to_itself_is_caught_by_the_probe_and_counted_when_it_runs_out() -> None:
    with FakeOpenAI(models=("m",), answer=reader, hidden_reasoning_tokens=150,
                    refuse_fields=("max_tokens",)) as server:
        result = probe(EndpointConfig(base_url=server.base_url, model="m"), 1024, retry_window_s=0)
        assert result.code == "reasoning_without_budget"
        assert "150 reasoning tokens reported in usage, their text not sent" in result.message
        # On a version with a budget too small for its thinking, every reply is cut off while reasoning.
        cell = run(server, "hidden", params={"reasoning": True, "reasoning_extra_tokens": 64})
    assert cell["no_final_answer"] == cell["n"] == 6 and cell["finish_reasons"]["length"] == 6


def test_a_model_that_reasons_despite_the_options_sent_is_told_they_did_not_stop_it() -> None:
    with FakeOpenAI(models=("m",), reasoning=lambda call: "Thinking anyway.") as server:
        config = EndpointConfig(base_url=server.base_url, model="m",
                                extra_body={"chat_template_kwargs": {"enable_thinking": False}})
        result = probe(config, 1024, retry_window_s=0)
    assert result.code == "reasoning_without_budget"
    assert 'The request options sent ({"chat_template_kwargs": {"enable_thinking": false}}) did not stop it' \
        in result.message
