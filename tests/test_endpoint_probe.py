"""The pre-flight probe: every way an endpoint can be unusable fails at once, with a message to act on."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from evalworkers.backends import EndpointConfig, ProbeResult, probe
from tests.fake_openai import GENERATION_PATHS, FakeOpenAI, Fault

pytestmark = pytest.mark.slow  # real HTTP servers (the fake endpoint), with retries

KEY = "sk-probe-4c8e2a6b0d9f1e3a5c7b"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("tiny",), max_model_len=32768) as fake:
        yield fake


def config_for(server: FakeOpenAI, **overrides: Any) -> EndpointConfig:
    settings: dict[str, Any] = {"base_url": server.url, "model": "tiny", "backoff_base_s": 0.01}
    settings.update(overrides)
    return EndpointConfig(**settings)


def run_probe(config: EndpointConfig, required_context: int = 16384, **kwargs: Any) -> ProbeResult:
    """One round of the probe (no retry window), to read the message each failure gives; the retries
    themselves are tested with the default window in test_endpoint_dialects.py."""
    kwargs.setdefault("retry_window_s", 0.0)
    result = probe(config, required_context, timeout_s=kwargs.pop("timeout_s", 5.0), **kwargs)
    assert (result.code == "ok") == result.ok
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("chars_per_token", [3.0, 4.0, 5.5])
def test_probe_ok_reports_context_latency_and_chars_per_token(server: FakeOpenAI, chars_per_token: float) -> None:
    server.chars_per_token = chars_per_token
    result = run_probe(config_for(server))
    assert result.ok, result.message
    assert result.code == "ok"
    assert result.server_context == 32768
    assert result.latency_s is not None and result.latency_s > 0
    assert result.chars_per_token == pytest.approx(chars_per_token, rel=0.03)
    assert result.served_models == ("tiny",)
    assert server.url in result.message


@pytest.mark.parametrize("api_mode", ["chat", "completions"])
@pytest.mark.parametrize("stream", [False, True])
def test_probe_works_in_both_api_modes_with_and_without_streaming(
    server: FakeOpenAI, api_mode: str, stream: bool
) -> None:
    result = run_probe(config_for(server, api_mode=api_mode, stream=stream))
    assert result.ok, result.message
    assert result.chars_per_token == pytest.approx(4.0, rel=0.03)
    paths = {r.path for r in server.requests} - {"/tokenize"}  # looked for; this server has none
    assert paths == {"/v1/models", "/v1/chat/completions" if api_mode == "chat" else "/v1/completions"}


@pytest.mark.parametrize("field", ["max_model_len", "context_length", "max_context_length"])
def test_probe_reads_the_context_window_from_any_known_field(server: FakeOpenAI, field: str) -> None:
    server.context_field = field
    server.max_model_len = 4096
    result = run_probe(config_for(server), required_context=2048)
    assert result.ok
    assert result.server_context == 4096


def test_probe_fails_when_the_context_window_is_smaller_than_the_version_needs(server: FakeOpenAI) -> None:
    server.max_model_len = 8192
    result = run_probe(config_for(server), required_context=131072)
    assert result.code == "context_too_small"
    assert result.server_context == 8192
    assert "8,192" in result.message and "131,072" in result.message
    assert "tiny" in result.message and server.url in result.message
    assert server.count("/v1/chat/completions") == 0  # failed before generating anything


def test_probe_accepts_a_server_that_does_not_report_its_context(server: FakeOpenAI) -> None:
    server.max_model_len = None
    result = run_probe(config_for(server), required_context=1_000_000)
    assert result.ok
    assert result.server_context is None


def test_probe_accepts_a_server_without_a_model_list(server: FakeOpenAI) -> None:
    server.serve_models = False
    result = run_probe(config_for(server))
    assert result.ok, result.message
    assert result.served_models == ()


def test_probe_reports_an_unreachable_host_with_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_probe(EndpointConfig(base_url=url, model="tiny"))
    assert result.code == "unreachable"
    assert url in result.message and "reachable" in result.message
    assert time.monotonic() - started < 2.0


def test_probe_reports_a_tls_failure_for_https_to_a_plain_http_server(server: FakeOpenAI) -> None:
    result = run_probe(config_for(server, base_url=f"https://127.0.0.1:{server.port}"))
    assert result.code == "tls"
    assert "http://" in result.message
    assert f"https://127.0.0.1:{server.port}" in result.message


def test_probe_reports_a_wrong_key_without_revealing_it(server: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.api_key = "sk-the-right-one-0000000000"
    result = run_probe(config_for(server, api_key=KEY))
    assert result.code == "auth"
    assert "API key" in result.message and server.url in result.message
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # the server did see (and echo) it
    for text in (result.message, repr(result), caplog.text):
        assert KEY not in text
        assert KEY[:8] not in text and KEY[-8:] not in text


def test_probe_reports_a_missing_key(server: FakeOpenAI) -> None:
    server.api_key = "sk-needed-0000000000"
    result = run_probe(config_for(server))
    assert result.code == "auth"
    assert "needs an API key" in result.message


def test_probe_passes_with_the_right_key(server: FakeOpenAI) -> None:
    server.api_key = KEY
    assert run_probe(config_for(server, api_key=KEY)).ok


def test_probe_reports_unknown_model_with_server_list(server: FakeOpenAI) -> None:
    server.models = ["alpha-7b", "beta-70b"]
    result = run_probe(config_for(server, model="gamma"))
    assert result.code == "unknown_model"
    assert "gamma" in result.message
    assert "alpha-7b" in result.message and "beta-70b" in result.message
    assert result.served_models == ("alpha-7b", "beta-70b")


def test_probe_reports_unknown_model_when_the_server_has_no_list(server: FakeOpenAI) -> None:
    server.serve_models = False
    result = run_probe(config_for(server, model="gamma"))
    assert result.code == "unknown_model"
    assert "does not exist" in result.message


def test_probe_reports_route_not_found_for_a_wrong_base_path(server: FakeOpenAI) -> None:
    result = run_probe(config_for(server, base_url=server.url + "/api"))
    assert result.code == "route_not_found"
    assert f"{server.url}/api/v1/chat/completions" in result.message
    assert "/v1" in result.message


def test_probe_reports_a_body_that_is_not_openai_shaped(server: FakeOpenAI) -> None:
    server.respond_raw({"status": "ok", "result": "hello"})
    result = run_probe(config_for(server))
    assert result.code == "not_openai"
    assert "OpenAI-compatible" in result.message and server.url in result.message


def test_probe_reports_a_web_page_as_not_openai(server: FakeOpenAI) -> None:
    server.respond_raw("<html><body>Welcome to my homepage</body></html>", content_type="text/html")
    result = run_probe(config_for(server))
    assert result.code == "not_openai"
    assert "text/html" in result.message


def test_probe_reports_a_silent_server_as_a_retryable_timeout(server: FakeOpenAI) -> None:
    server.latency_s = 5.0
    started = time.monotonic()
    result = run_probe(config_for(server), timeout_s=0.5)
    assert result.code == "timeout"
    assert result.retryable
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(("status", "code"), [(503, "server_error"), (500, "server_error"), (429, "rate_limited")])
def test_probe_reports_server_trouble_as_retryable(server: FakeOpenAI, status: int, code: str) -> None:
    server.inject(Fault(status=status, paths=GENERATION_PATHS), times=None)
    result = run_probe(config_for(server))
    assert result.code == code
    assert result.retryable
    assert server.count("/v1/chat/completions") == 1  # the probe does not retry


def test_probe_reports_a_dropped_connection_as_unreachable(server: FakeOpenAI) -> None:
    server.inject(Fault(drop=True, paths=("/v1/models", *GENERATION_PATHS)), times=None)
    result = run_probe(config_for(server))
    assert result.code == "unreachable"
    assert "closed the connection" in result.message


def test_probe_reports_a_rejected_request_with_the_server_reason(server: FakeOpenAI) -> None:
    server.inject(Fault(status=400, message="max_tokens is not supported"), times=None)
    result = run_probe(config_for(server))
    assert result.code == "rejected"
    assert "max_tokens is not supported" in result.message


def test_probe_route_not_found_quotes_a_specific_server_reason(server: FakeOpenAI) -> None:
    hint = "This is a chat model and not supported in the v1/completions endpoint."
    server.inject(Fault(status=404, message=hint, paths=GENERATION_PATHS), times=None)
    result = run_probe(config_for(server, api_mode="completions"))
    assert result.code == "route_not_found"
    assert hint in result.message
    assert "'completions' uses /completions" in result.message
