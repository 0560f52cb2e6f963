"""The OpenAI-compatible endpoint backend against a real local HTTP server (tests/fake_openai.py)."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from evalworkers.backends import (
    CircuitBreaker,
    CircuitOpenError,
    EndpointBackend,
    EndpointConfig,
    GenerationRequest,
    RetryPolicy,
    generate_many,
)
from evalworkers.backends.retry import parse_retry_after
from tests.fake_openai import CHAT_PATH, COMPLETIONS_PATH, FakeCall, FakeOpenAI, Fault, fixed_answer

pytestmark = pytest.mark.slow  # real HTTP servers (the fake endpoint), with retries and timeouts

KEY = "sk-test-7f3a9c1e5b2d4f6a8c0e2b4d"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("tiny",)) as fake:
        yield fake


def make_config(server: FakeOpenAI, **overrides: Any) -> EndpointConfig:
    settings: dict[str, Any] = {
        "base_url": server.url,
        "model": "tiny",
        "request_timeout_s": 5.0,
        "connect_timeout_s": 2.0,
        "deadline_s": 10.0,
        "max_retries": 3,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
        "retry_after_cap_s": 5.0,
    }
    settings.update(overrides)
    return EndpointConfig(**settings)


def needle(number: int, max_new_tokens: int = 16) -> GenerationRequest:
    haystack = "Grass is green. " * 20
    return GenerationRequest(
        messages=[
            {"role": "system", "content": "Answer with the number only."},
            {"role": "user", "content": f"{haystack} The magic number is {number}. {haystack} What is it?"},
        ],
        max_new_tokens=max_new_tokens,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- requests and responses ---------------------------------------------------------------------------------


def test_chat_answer_and_usage_come_from_the_server(server: FakeOpenAI) -> None:
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(needle(4817263))

    assert result.ok, result.error
    assert result.text == "4817263"
    sent = server.requests[-1]
    assert sent.path == CHAT_PATH
    assert sent.usage is not None
    assert result.prompt_tokens == sent.usage["prompt_tokens"]
    assert result.completion_tokens == sent.usage["completion_tokens"]
    assert result.finish_reason == "stop"
    assert result.attempts == 1
    assert result.latency_s > 0
    assert result.ttft_s is None


def test_request_is_greedy_with_task_max_tokens_stop_and_bearer_key(server: FakeOpenAI) -> None:
    server.api_key = KEY
    config = make_config(server, api_key=KEY)
    request = GenerationRequest(prompt="Say 1234567", max_new_tokens=37, stop=["\n\n", "END"])
    with EndpointBackend(config) as backend:
        assert backend.generate(request).ok

    sent = server.requests[-1]
    assert sent.body["temperature"] == 0
    assert sent.body["max_tokens"] == 37
    assert sent.body["stop"] == ["\n\n", "END"]
    assert sent.body["model"] == "tiny"
    assert sent.body["messages"] == [{"role": "user", "content": "Say 1234567"}]
    assert sent.headers["authorization"] == f"Bearer {KEY}"


def test_completions_mode_posts_the_prompt_to_the_completions_route(server: FakeOpenAI) -> None:
    config = make_config(server, api_mode="completions")
    with EndpointBackend(config) as backend:
        result = backend.generate(GenerationRequest(prompt="The code is 7654321. The code is", max_new_tokens=8))

    assert result.text == "7654321"
    assert server.requests[-1].path == COMPLETIONS_PATH
    assert server.requests[-1].body["prompt"] == "The code is 7654321. The code is"


def test_completions_mode_refuses_chat_messages_without_a_request(server: FakeOpenAI) -> None:
    with EndpointBackend(make_config(server, api_mode="completions")) as backend:
        result = backend.generate(needle(1234567))
    assert not result.ok
    assert "completions mode" in (result.error or "")
    assert server.count() == 0


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/chat/completions"])
def test_base_url_is_accepted_with_or_without_v1(server: FakeOpenAI, suffix: str) -> None:
    with EndpointBackend(make_config(server, base_url=server.url + suffix)) as backend:
        assert backend.generate(needle(2222222)).text == "2222222"
    assert server.requests[-1].path == CHAT_PATH


def test_answer_cut_by_max_new_tokens_reports_length(server: FakeOpenAI) -> None:
    server.answer = fixed_answer("word " * 100)
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(GenerationRequest(prompt="talk", max_new_tokens=5))
    assert result.finish_reason == "length"
    assert result.completion_tokens == 5
    assert len(result.text) == 20


def test_streaming_measures_time_to_first_token_and_decode_rate(server: FakeOpenAI) -> None:
    server.ttft_s = 0.3
    server.chunk_delay_s = 0.02
    server.answer = fixed_answer("The number you are looking for is 4817263.")
    with EndpointBackend(make_config(server, stream=True)) as backend:
        result = backend.generate(needle(1, max_new_tokens=64))

    assert result.ok, result.error
    assert result.text == "The number you are looking for is 4817263."
    assert result.ttft_s is not None and 0.3 <= result.ttft_s < result.latency_s
    assert result.latency_s >= result.ttft_s + 0.02 * 9
    sent = server.requests[-1]
    assert sent.body["stream"] is True
    assert sent.usage is not None
    assert result.prompt_tokens == sent.usage["prompt_tokens"]
    assert result.completion_tokens == sent.usage["completion_tokens"]
    assert result.decode_tokens_per_s is not None
    expected_rate = (result.completion_tokens - 1) / (result.latency_s - result.ttft_s)
    assert result.decode_tokens_per_s == pytest.approx(expected_rate)
    assert result.finish_reason == "stop"


def test_streaming_without_usage_leaves_token_counts_unknown(server: FakeOpenAI) -> None:
    server.stream_usage = False
    with EndpointBackend(make_config(server, stream=True)) as backend:
        result = backend.generate(needle(5550001))
    assert result.text == "5550001"
    assert result.prompt_tokens is None and result.completion_tokens is None
    assert result.decode_tokens_per_s is None
    assert result.ttft_s is not None


def test_injected_client_is_used_and_left_open(server: FakeOpenAI) -> None:
    seen: list[str] = []
    client = httpx.Client(event_hooks={"request": [lambda request: seen.append(str(request.url))]})
    backend = EndpointBackend(make_config(server), client=client)
    assert backend.generate(needle(3141592)).text == "3141592"
    backend.close()
    assert seen == [server.base_url + "/chat/completions"]
    assert not client.is_closed
    client.close()


def test_the_engine_drives_an_endpoint_backend_like_any_backend(server: FakeOpenAI) -> None:
    results: dict[int, str] = {}
    with EndpointBackend(make_config(server)) as backend:
        generate_many(backend, [needle(n) for n in (1111111, 2222222, 3333333)], concurrency=2,
                      on_result=lambda i, result: results.__setitem__(i, result.text))
    assert results == {0: "1111111", 1: "2222222", 2: "3333333"}


# --- retries ------------------------------------------------------------------------------------------------


def test_retries_503_then_succeeds(server: FakeOpenAI) -> None:
    server.fail_next(2, status=503)
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(needle(1000001))
    assert result.ok and result.text == "1000001"
    assert result.attempts == 3
    assert [r.status for r in server.requests] == [503, 503, 200]


def test_retries_dropped_connection_then_succeeds(server: FakeOpenAI) -> None:
    server.drop_next(2)
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(needle(1000002))
    assert result.text == "1000002"
    assert result.attempts == 3


def test_retries_a_timed_out_attempt_then_succeeds(server: FakeOpenAI) -> None:
    server.slow_next(1, delay_s=3.0)
    started = time.monotonic()
    with EndpointBackend(make_config(server, request_timeout_s=0.3)) as backend:
        result = backend.generate(needle(1000003))
    assert result.text == "1000003"
    assert result.attempts == 2
    assert time.monotonic() - started < 2.0


def test_429_waits_for_retry_after_seconds(server: FakeOpenAI) -> None:
    server.fail_next(1, status=429, retry_after="0.6")
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(needle(1000004))
    assert result.text == "1000004"
    first, second = server.requests
    assert first.status == 429
    assert second.started - first.started >= 0.55


def test_429_waits_for_retry_after_http_date(server: FakeOpenAI) -> None:
    when = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)  # HTTP dates have whole seconds
    server.fail_next(1, status=429, retry_after=format_datetime(when, usegmt=True))
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(needle(1000005))
    assert result.text == "1000005"
    first, second = server.requests
    assert first.status == 429
    assert second.started >= when.timestamp() - 0.05


def test_retry_after_is_capped(server: FakeOpenAI) -> None:
    server.fail_next(1, status=429, retry_after="3600")
    started = time.monotonic()
    with EndpointBackend(make_config(server, retry_after_cap_s=0.2)) as backend:
        result = backend.generate(needle(1000006))
    assert result.text == "1000006"
    assert time.monotonic() - started < 2.0


def test_retry_after_beyond_the_deadline_fails_at_once(server: FakeOpenAI) -> None:
    server.fail_next(1, status=429, retry_after="30")
    started = time.monotonic()
    with EndpointBackend(make_config(server, deadline_s=3.0, retry_after_cap_s=60)) as backend:
        result = backend.generate(needle(1000007))
    assert not result.ok
    assert "429" in (result.error or "") and "deadline" in (result.error or "")
    assert time.monotonic() - started < 1.0
    assert server.count() == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_not_retried(server: FakeOpenAI, status: int) -> None:
    server.fail_next(5, status=status, message="bad request shape")
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(needle(1))
    assert not result.ok
    assert f"HTTP {status}" in (result.error or "")
    assert result.attempts == 1
    assert server.count() == 1


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 504])
def test_timeouts_conflicts_rate_limits_and_server_errors_are_retried(server: FakeOpenAI, status: int) -> None:
    server.fail_next(1, status=status)
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(needle(1000008))
    assert result.text == "1000008"
    assert result.attempts == 2


def test_sample_that_keeps_failing_is_an_error_result_not_an_empty_prediction(server: FakeOpenAI) -> None:
    server.inject(Fault(status=503, message="overloaded"), times=None)
    with EndpointBackend(make_config(server, max_retries=2)) as backend:
        result = backend.generate(needle(1))
    assert not result.ok
    assert result.text == ""
    assert "HTTP 503" in (result.error or "") and "overloaded" in (result.error or "")
    assert "3 attempts" in (result.error or "")
    assert result.attempts == 3
    assert server.count() == 3


def test_unreachable_host_is_retried_then_reported(server: FakeOpenAI) -> None:
    config = make_config(server, base_url=f"http://127.0.0.1:{free_port()}", max_retries=2)
    with EndpointBackend(config) as backend:
        result = backend.generate(needle(1))
    assert not result.ok
    assert result.error is not None and result.error.startswith("connection failed")
    assert result.attempts == 3


def test_tls_failure_is_reported_without_retrying(server: FakeOpenAI) -> None:
    config = make_config(server, base_url=f"https://127.0.0.1:{server.port}")
    with EndpointBackend(config) as backend:
        result = backend.generate(needle(1))
    assert not result.ok
    assert result.error is not None and result.error.startswith("TLS handshake failed")
    assert result.attempts == 1


def test_non_openai_body_is_an_error(server: FakeOpenAI) -> None:
    server.respond_raw({"status": "ok", "output": "1234567"})
    with EndpointBackend(make_config(server)) as backend:
        result = backend.generate(needle(1234567))
    assert not result.ok
    assert "choices" in (result.error or "")
    assert result.attempts == 1


def test_error_event_inside_a_stream_is_retried(server: FakeOpenAI) -> None:
    server.respond_raw('data: {"error": {"message": "engine crashed"}}\n\n', content_type="text/event-stream", times=1)
    with EndpointBackend(make_config(server, stream=True)) as backend:
        result = backend.generate(needle(1000009))
    assert result.text == "1000009"
    assert result.attempts == 2


def test_stream_cut_before_completion_is_retried(server: FakeOpenAI) -> None:
    partial = 'data: {"choices": [{"index": 0, "delta": {"content": "12"}, "finish_reason": null}]}\n\n'
    server.respond_raw(partial, content_type="text/event-stream", times=1)
    with EndpointBackend(make_config(server, stream=True)) as backend:
        result = backend.generate(needle(1000010))
    assert result.text == "1000010"
    assert result.attempts == 2


# --- deadline -----------------------------------------------------------------------------------------------


def test_slow_server_never_holds_a_call_beyond_the_deadline(server: FakeOpenAI) -> None:
    server.latency_s = 5.0
    config = make_config(server, deadline_s=0.5, request_timeout_s=30.0)
    started = time.monotonic()
    with EndpointBackend(config) as backend:
        result = backend.generate(needle(1))
    elapsed = time.monotonic() - started
    assert not result.ok
    assert "timed out" in (result.error or "")
    assert elapsed < 1.5


def test_dripping_stream_is_cut_at_the_deadline(server: FakeOpenAI) -> None:
    server.answer = fixed_answer("x" * 400)
    server.chunk_delay_s = 0.1
    config = make_config(server, stream=True, deadline_s=0.6, request_timeout_s=30.0)
    started = time.monotonic()
    with EndpointBackend(config) as backend:
        result = backend.generate(GenerationRequest(prompt="go", max_new_tokens=1000))
    assert not result.ok
    assert time.monotonic() - started < 1.5


def test_deadline_covers_retries(server: FakeOpenAI) -> None:
    server.inject(Fault(status=503, delay_s=0.3), times=None)
    config = make_config(server, deadline_s=1.0, max_retries=50, backoff_base_s=0.05, backoff_cap_s=0.1)
    started = time.monotonic()
    with EndpointBackend(config) as backend:
        result = backend.generate(needle(1))
    assert not result.ok
    assert 1 < result.attempts < 50
    assert time.monotonic() - started < 2.0


# --- retry timing and the breaker (no network) --------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base_s=0.1, backoff_cap_s=1.0)
    rng = random.Random(7)
    for retry in range(8):
        ceiling = min(1.0, 0.1 * 2**retry)
        delays = {policy.backoff(retry, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert policy.delay(0, retry_after=0.5, rng=rng) == 0.5
    assert policy.delay(0, retry_after=600, rng=rng) == policy.retry_after_cap_s


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("-3", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_circuit_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(threshold=3)
    breaker.record_failure("a")
    breaker.record_failure("b")
    breaker.record_success()
    breaker.record_failure("c")
    breaker.record_failure("d")
    assert not breaker.is_open
    breaker.check()
    breaker.record_failure("HTTP 503 Service Unavailable")
    assert breaker.is_open
    assert "HTTP 503" in (breaker.reason or "")
    with pytest.raises(CircuitOpenError, match="3 consecutive failures"):
        breaker.check()
    breaker.record_success()
    assert breaker.is_open  # stays open: the cell fails with the reason


def test_open_breaker_stops_calling_a_dead_endpoint(server: FakeOpenAI) -> None:
    server.inject(Fault(status=503), times=None)
    breaker = CircuitBreaker(threshold=3)
    with EndpointBackend(make_config(server, max_retries=1)) as backend:
        results = backend.generate_many([needle(i) for i in range(10)], concurrency=1, breaker=breaker)
    assert breaker.is_open
    assert server.count() == 3 * 2
    assert all(not r.ok for r in results)
    assert all("HTTP 503" in (r.error or "") for r in results[:3])
    assert all((r.error or "").startswith("circuit open") and r.attempts == 0 for r in results[3:])


def test_open_breaker_wakes_a_request_waiting_to_retry(server: FakeOpenAI) -> None:
    server.fail_next(1, status=503)
    breaker = CircuitBreaker(threshold=1)
    config = make_config(server, backoff_base_s=5.0, backoff_cap_s=5.0)
    box: dict[str, Any] = {}
    with EndpointBackend(config) as backend:
        worker = threading.Thread(target=lambda: box.update(result=backend.generate(needle(1), breaker=breaker)))
        started = time.monotonic()
        worker.start()
        time.sleep(0.3)
        breaker.record_failure("another sample failed")
        worker.join(timeout=3)
    assert not worker.is_alive()
    assert time.monotonic() - started < 2.0
    assert box["result"].error.startswith("circuit open")


# --- many samples -------------------------------------------------------------------------------------------


def test_generate_many_preserves_request_order(server: FakeOpenAI) -> None:
    def slow_for_early_numbers(call: FakeCall) -> str:
        number = int(call.prompt.split("magic number is ")[1][:7])
        time.sleep((1000011 - number) * 0.02)  # earlier requests finish last
        return str(number)

    server.answer = slow_for_early_numbers
    numbers = list(range(1000000, 1000012))
    finished: list[int] = []
    with EndpointBackend(make_config(server)) as backend:
        results = backend.generate_many(
            [needle(n) for n in numbers], concurrency=4, on_result=lambda i, _: finished.append(i)
        )
    assert [r.text for r in results] == [str(n) for n in numbers]
    assert sorted(finished) == list(range(12))
    assert finished != sorted(finished)  # completion order differed, yet results are in request order


def test_generate_many_never_exceeds_its_concurrency(server: FakeOpenAI) -> None:
    server.latency_s = 0.15
    with EndpointBackend(make_config(server)) as backend:
        results = backend.generate_many([needle(2000000 + i) for i in range(12)], concurrency=3)
    assert all(r.ok for r in results)
    assert server.max_inflight == 3


def test_generate_many_defaults_to_the_configured_concurrency(server: FakeOpenAI) -> None:
    server.latency_s = 0.15
    with EndpointBackend(make_config(server, concurrency=2)) as backend:
        backend.generate_many([needle(2000000 + i) for i in range(6)])
    assert server.max_inflight == 2


def test_per_host_limit_caps_requests_across_backends(server: FakeOpenAI) -> None:
    server.latency_s = 0.1
    config = make_config(server, concurrency=4, per_host_limit=2)
    backends = [EndpointBackend(config), EndpointBackend(config)]
    threads = [
        threading.Thread(target=b.generate_many, args=([needle(3000000 + i) for i in range(6)],)) for b in backends
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for backend in backends:
        backend.close()
    assert server.count(CHAT_PATH) == 12
    assert server.max_inflight == 2


def test_generate_many_returns_errors_per_item(server: FakeOpenAI) -> None:
    server.fail_next(1, status=400, message="prompt too long")
    with EndpointBackend(make_config(server)) as backend:
        results = backend.generate_many([needle(4000000 + i) for i in range(4)], concurrency=1)
    assert "prompt too long" in (results[0].error or "")
    assert [r.text for r in results[1:]] == ["4000001", "4000002", "4000003"]


def test_generate_many_reports_results_in_the_calling_thread(server: FakeOpenAI) -> None:
    threads: set[int] = set()
    with EndpointBackend(make_config(server)) as backend:
        backend.generate_many(
            [needle(5000000 + i) for i in range(5)], on_result=lambda i, r: threads.add(threading.get_ident())
        )
    assert threads == {threading.get_ident()}


def test_generate_many_stop_event_cancels_requests_not_yet_started(server: FakeOpenAI) -> None:
    server.latency_s = 0.2  # the next request is still in flight when the first result arrives
    stop = threading.Event()

    def on_result(index: int, _: object) -> None:
        stop.set()

    with EndpointBackend(make_config(server)) as backend:
        results = backend.generate_many(
            [needle(6000000 + i) for i in range(6)], concurrency=1, on_result=on_result, stop=stop
        )
    assert results[0].text == "6000000"
    assert sum(r.error == "cancelled" for r in results) >= 4
    assert server.count() <= 2


# --- secrets and configuration ------------------------------------------------------------------------------


def test_api_key_never_appears_in_reprs_errors_or_logs(server: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.api_key = "sk-the-right-key-000000000000"
    config = make_config(server, api_key=KEY, max_retries=1)
    with EndpointBackend(config) as backend:
        rejected = backend.generate(needle(1))
        server.api_key = None
        server.fail_next(1, status=500, message=f"upstream said: key {KEY} is throttled")
        echoed = backend.generate(needle(1))
        shown = [repr(config), str(config), repr(backend), repr(rejected), repr(echoed)]

    assert "HTTP 401" in (rejected.error or "")
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent, and echoed back
    assert "***" in repr(config)
    assert caplog.text
    for text in [*shown, caplog.text]:
        assert KEY not in text
        assert KEY[:8] not in text and KEY[-8:] not in text


@pytest.mark.parametrize(
    "url",
    [
        "ftp://models.example.com/v1",
        "file:///etc/passwd",
        "gopher://x",
        "http://user:pw@example.com/v1",
        "http://",
    ],
)
def test_config_rejects_urls_that_are_not_plain_http(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        EndpointConfig(base_url=url, model="m", api_key=KEY)
    assert KEY not in str(caught.value)


def test_config_rejects_an_unsendable_key_without_quoting_it() -> None:
    bad_key = KEY + "\r\nX-Injected: 1"
    with pytest.raises(ValueError) as caught:
        EndpointConfig(base_url="https://example.com", model="m", api_key=bad_key)
    assert KEY not in str(caught.value)
