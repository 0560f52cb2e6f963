"""Lengths to 1M tokens: versions accept them (and no more), pages label them, request bodies of several MB are
streamed to the endpoint without whole copies, and an endpoint run at 1M completes with the measured prompt tokens
recorded."""

from __future__ import annotations

import json
import tracemalloc
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from evalworkers.backends import EndpointBackend, EndpointConfig, GenerationRequest
from evalworkers.backends.wire import BODY_CHUNK_CHARS, JsonBody
from leaderboard import versioning
from leaderboard.charts import length_label
from leaderboard.models import BenchmarkVersion, SampleResult, SubmissionStatus, TaskSpec, VersionOrigin
from tests.factories import make_entry, make_submission, make_version, run_inline
from tests.fake_openai import FakeOpenAI, fixed_answer

MILLION = 1 << 20


def reference_json(body) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


# --- request bodies ---------------------------------------------------------------------------------------

def test_a_streamed_body_is_the_same_json_as_encoding_it_at_once() -> None:
    prompt = "Line \"one\"\n\ttab \x01 é 😀 \u2028 " * 40_000  # escapes, non-ASCII and a line separator
    body = {"model": "m", "temperature": 0, "max_tokens": 8, "stop": ["\n"], "stream": True,
            "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": prompt}],
            "extra": [1, 2.5, None, False, {"nested": "x" * (3 * BODY_CHUNK_CHARS + 7)}]}
    streamed = JsonBody(body)
    data = b"".join(streamed)
    assert data == reference_json(body)
    assert streamed.length_bytes == len(data) and streamed.headers["Content-Length"] == str(len(data))
    assert b"".join(streamed) == data  # re-iterable: a retry sends the same bytes
    chunks = list(streamed)
    assert len(chunks) > 10 and max(len(c) for c in chunks) <= 6 * 4 * BODY_CHUNK_CHARS


def test_a_body_that_json_cannot_hold_is_refused_when_it_is_built() -> None:
    with pytest.raises(ValueError):
        JsonBody({"temperature": float("nan")})
    with pytest.raises(TypeError):
        JsonBody({"x": {1: "a non-string key"}})


def test_streaming_a_several_megabyte_body_holds_no_copy_of_it() -> None:
    prompt = "The grass is green. The sky is blue. " * 140_000  # about 5 MB, the size of a 1M-token prompt
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    tracemalloc.start()
    try:
        streamed = JsonBody(body)
        sent = sum(len(chunk) for chunk in streamed)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sent == len(reference_json(body)) > 5_000_000
    assert peak < len(prompt) / 8  # a whole copy (as `json=` makes: a str, then its bytes) would exceed it


@pytest.mark.slow  # a real HTTP server (the fake endpoint)
def test_a_several_megabyte_prompt_arrives_whole_with_its_length_and_without_chunked_encoding() -> None:
    prompt = "Lorem ipsum dolor sit amet. " * 200_000
    with FakeOpenAI(models=("big",), answer=fixed_answer("ok"), max_model_len=4 * MILLION) as server:
        with EndpointBackend(EndpointConfig(base_url=server.base_url, model="big", stream=False)) as backend:
            result = backend.generate(GenerationRequest(messages=[{"role": "user", "content": prompt}],
                                                        max_new_tokens=4))
        assert result.error is None and result.text == "ok"
        request = server.generation_requests[-1]
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert request.body["messages"][0]["content"] == prompt
        assert int(headers["content-length"]) > len(prompt) and "transfer-encoding" not in headers
        assert result.prompt_tokens == request.usage["prompt_tokens"] >= len(prompt) / server.chars_per_token


# --- versions and pages -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_measured_version_takes_lengths_up_to_1m_and_refuses_longer_ones() -> None:
    version = make_version("to-1m", lengths=[4096, 262144, 524288, MILLION])
    version.full_clean()
    version.lengths = [4096, 2 * MILLION]
    with pytest.raises(ValidationError) as exc:
        version.full_clean()
    assert "2,097,152 tokens is past the longest length" in str(exc.value.message_dict["lengths"])
    version.origin = VersionOrigin.REPORTED  # a published table may report past 1M: nothing is generated
    version.benchmark_name, version.source_url = "Someone's", "https://example.org/table"
    version.clean()


@pytest.mark.django_db
def test_the_long_version_offers_256k_512k_and_1m_and_its_page_labels_them(client) -> None:
    call_command("seed_versions", stdout=StringIO())
    version = BenchmarkVersion.objects.get(slug="long-1m")
    assert version.lengths[0] == 4096 and version.lengths[-3:] == [262144, 524288, MILLION]
    assert {t.task_type for t in version.tasks.all()} == {"mrcr", "needle_threading", "non_literal_needle"}
    assert [length_label(n) for n in version.lengths[-3:]] == ["256K", "512K", "1M"]
    page = client.get(reverse("leaderboard:version", args=["long-1m"])).content.decode()
    assert "128K, 256K, 512K, 1M" in page


# --- an endpoint run at 1M ----------------------------------------------------------------------------------

@pytest.mark.slow  # a real HTTP server, a 1M-token sample (about 5 MB of prompt) built and sent
@pytest.mark.django_db
def test_an_endpoint_run_at_1m_completes_and_records_the_measured_prompt_tokens(settings) -> None:
    settings.EVAL_PROBE_RETRY_S = 0
    version = make_version("one-million", lengths=[MILLION], samples_per_cell=1, tasks=0)
    TaskSpec.objects.create(version=version, key="mrcr_2", task_type="mrcr", params={"num_needles": 2},
                            max_new_tokens=256)
    version = versioning.publish(version)
    with FakeOpenAI(models=("long",), answer=fixed_answer("nothing"), max_model_len=MILLION) as server:
        sub = make_submission(version=version, model=make_entry(endpoint_url=server.base_url,
                                                                api_model_name="long"))
        sub = run_inline(sub)
        assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
        result = SampleResult.objects.get(cell__submission=sub)
        sent = max(server.generation_requests, key=lambda r: len(r.body["messages"][0]["content"]))
    target = MILLION - 256
    # The server's count of the prompt, as its usage reported it, is what the sample records.
    assert result.prompt_tokens == sent.usage["prompt_tokens"]
    assert 0.98 * target <= result.prompt_tokens <= MILLION
    assert len(sent.body["messages"][0]["content"]) > 3_000_000
    assert result.metadata["target_prompt_tokens"] == target and result.error == ""
    assert result.score == 0.0  # "nothing" does not start with the asked prefix
