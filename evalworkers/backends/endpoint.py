"""OpenAI-compatible endpoint backend (httpx): retries, a total deadline, streaming TTFT and per-host limits.

Every failure becomes a ``GenerationResult`` with a short ``error``; nothing here raises on network trouble,
and no message, repr or log line carries the API key.
"""

from __future__ import annotations

import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx

from evalworkers.backends.addresses import UnsafeAddressError, check_url, parse_networks
from evalworkers.backends.base import GenerationRequest, GenerationResult
from evalworkers.backends.concurrency import RequestOrBuilder, generate_many
from evalworkers.backends.guarded import GuardedTransport, UnsafeEndpointError
from evalworkers.backends.limits import host_key, host_semaphore
from evalworkers.backends.retry import (
    CircuitBreaker,
    Deadline,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
)
from evalworkers.backends.wire import (
    ApiMode,
    JsonBody,
    NotOpenAIError,
    ParsedCompletion,
    StreamAccumulator,
    api_root,
    build_body,
    error_details,
    iter_sse_data,
    parse_completion,
    route,
)

logger = logging.getLogger(__name__)

MASK = "***"
_MAX_ERROR_BODY = 64 * 1024
_MASKED_KEY_RE = re.compile(r"\b(sk|pk|hf|key|api)[-_][A-Za-z0-9_\-*.]{4,}", re.IGNORECASE)
_KEY_OK_RE = re.compile(r"^[\x21-\x7e]+$")


def redact(text: str, secret: str | None) -> str:
    """Remove the key, its long prefixes/suffixes (servers echo masked keys) and key-looking tokens."""
    if secret:
        text = text.replace(secret, MASK)
        if len(secret) >= 16:
            for part in (secret[:8], secret[-8:]):
                text = text.replace(part, MASK)
    return _MASKED_KEY_RE.sub(MASK, text)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, repr=False)
class EndpointConfig:
    """How to reach one model endpoint.

    ``request_timeout_s`` bounds one attempt (and any silence while reading it); ``deadline_s`` bounds a whole
    sample, retries and waits included. ``per_host_limit`` is shared by every backend in the process that
    talks to the same scheme://host:port. Unless ``allow_private``, every connection is checked at connect time
    (``guarded.GuardedTransport``) and refused for loopback, private, link-local, metadata and other non-public
    addresses, except those in ``allowed_networks`` (CIDR strings the operator trusts).
    """

    base_url: str
    model: str
    api_mode: ApiMode = "chat"
    api_key: str | None = None
    stream: bool = False
    request_timeout_s: float = 300.0
    connect_timeout_s: float = 10.0
    deadline_s: float = 900.0
    max_retries: int = 4
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 60.0
    concurrency: int = 8
    per_host_limit: int = 16
    stream_usage: bool = True
    max_tokens_field: str = "max_tokens"
    verify_tls: bool = True
    trust_env: bool = False
    max_response_bytes: int = 8 * 1024 * 1024
    extra_body: Mapping[str, Any] | None = field(default=None, hash=False)
    allow_private: bool = True
    allowed_networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError("endpoint URL must start with http:// or https://")
        if not parts.hostname:
            raise ValueError("endpoint URL has no host name")
        if parts.username is not None or parts.password is not None:
            raise ValueError("endpoint URL must not contain credentials; give the API key separately")
        if parts.query or parts.fragment:
            raise ValueError("endpoint URL must not contain a query string or fragment")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("endpoint URL has an invalid port") from None
        if not self.model.strip():
            raise ValueError("model name is empty")
        if self.api_mode not in ("chat", "completions"):
            raise ValueError("api_mode must be 'chat' or 'completions'")
        if self.api_key is not None and not _KEY_OK_RE.match(self.api_key):
            # httpx would echo an unsendable header value in its exception; refuse it here without quoting it.
            raise ValueError("API key contains spaces, control or non-ASCII characters")
        for name in ("request_timeout_s", "connect_timeout_s", "deadline_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.concurrency < 1 or self.per_host_limit < 1:
            raise ValueError("concurrency and per_host_limit must be at least 1")
        self.retry_policy()  # validates retry numbers
        parse_networks(self.allowed_networks)  # validates the CIDR strings

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body this endpoint gets for ``request`` (raises ValueError for an unsendable request)."""
        return build_body(
            request,
            model=self.model,
            api_mode=self.api_mode,
            stream=self.stream,
            stream_usage=self.stream_usage,
            max_tokens_field=self.max_tokens_field,
            extra_body=self.extra_body,
        )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "api_key" and value is not None:
                value = MASK
            shown.append(f"{f.name}={value!r}")
        return f"EndpointConfig({', '.join(shown)})"

    __str__ = __repr__

    @property
    def api_root(self) -> str:
        return api_root(self.base_url)

    @property
    def server_root(self) -> str:
        """The API root without its ``/v1``: where vLLM, llama.cpp and TGI serve ``/tokenize``."""
        return self.api_root.removesuffix("/v1")

    @property
    def generation_url(self) -> str:
        return self.api_root + route(self.api_mode)

    @property
    def models_url(self) -> str:
        return self.api_root + "/models"

    @property
    def host(self) -> str:
        return host_key(self.base_url)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_retries, self.backoff_base_s, self.backoff_cap_s, self.retry_after_cap_s)


AttemptKind = Literal[
    "ok",
    "connect",
    "tls",
    "timeout",
    "dropped",
    "http",
    "auth",
    "not_found",
    "redirect",
    "not_openai",
    "too_large",
    "blocked",
]


@dataclass(frozen=True)
class Attempt:
    """One HTTP exchange, classified; the probe reads the same record to explain failures."""

    kind: AttemptKind
    reason: str
    retryable: bool = False
    status: int | None = None
    retry_after: float | None = None
    payload: Any = None
    parsed: ParsedCompletion | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    server_message: str | None = None
    server_code: str | None = None
    streamed: bool = False  # the answer came as server-sent events

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


class _OutOfTime(Exception):
    pass


class _TooLarge(Exception):
    pass


def _is_tls_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError | ssl.CertificateError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


class EndpointBackend:
    """Generates samples from an OpenAI-compatible server; thread-safe, so one instance serves a pool."""

    accepts_breaker = True

    def __init__(
        self,
        config: EndpointConfig,
        *,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._policy = config.retry_policy()
        self._rng = rng or random.Random()
        self._owns_client = client is None
        limits = httpx.Limits(
            max_connections=max(config.concurrency, config.per_host_limit),
            max_keepalive_connections=config.concurrency,
        )
        if client is None and not config.allow_private:
            # Environment proxies would bypass the check (httpx mounts them over `transport`), so none here.
            transport = GuardedTransport(
                transport or httpx.HTTPTransport(verify=config.verify_tls, limits=limits),
                allowed_networks=parse_networks(config.allowed_networks),
            )
        self._client = client or httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(config.request_timeout_s, connect=config.connect_timeout_s),
            limits=limits,
            verify=config.verify_tls,
            follow_redirects=False,
            trust_env=config.trust_env and config.allow_private,
            headers={"User-Agent": "longctx-leaderboard/0.1"},
        )

    def __repr__(self) -> str:
        return f"EndpointBackend({self.config!r})"

    def __enter__(self) -> EndpointBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # --- public generation API --------------------------------------------------------------------------

    def generate(
        self, request: GenerationRequest, *, breaker: CircuitBreaker | None = None
    ) -> GenerationResult:
        """One sample with retries inside ``deadline_s``; records into ``breaker`` (if given) and obeys it."""
        config = self.config
        deadline = Deadline(config.deadline_s)
        try:
            body = config.body(request)
        except ValueError as exc:
            return self._fail(str(exc), 0, deadline, breaker)

        attempts = 0
        reason = "no attempt made"
        for retry_number in range(self._policy.max_retries + 1):
            if breaker is not None and breaker.is_open:
                return GenerationResult.failure(
                    breaker.message(), attempts=attempts, latency_s=deadline.elapsed()
                )
            if deadline.expired:
                reason = f"{reason}; deadline of {config.deadline_s:g}s reached"
                break
            attempts += 1
            attempt = self.send_once(route(config.api_mode), body, deadline=deadline, stream=config.stream)
            if attempt.ok and attempt.parsed is not None:
                if breaker is not None:
                    breaker.record_success()
                return self._success(attempt, attempts)
            reason = attempt.reason
            if not attempt.retryable or retry_number == self._policy.max_retries:
                break
            wait = self._policy.delay(retry_number, attempt.retry_after, self._rng)
            if wait >= deadline.remaining():
                reason = f"{reason}; no time left to retry within the {config.deadline_s:g}s deadline"
                break
            logger.warning(
                "endpoint %s: attempt %d failed (%s); retrying in %.2fs", config.host, attempts, reason, wait
            )
            if breaker is not None:
                if breaker.wait_open(wait):
                    return GenerationResult.failure(
                        breaker.message(), attempts=attempts, latency_s=deadline.elapsed()
                    )
            else:
                time.sleep(wait)
        return self._fail(reason, attempts, deadline, breaker)

    def generate_many(
        self,
        requests: Sequence[RequestOrBuilder],
        concurrency: int | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        on_result: Callable[[int, GenerationResult], None] | None = None,
        stop: threading.Event | None = None,
    ) -> list[GenerationResult]:
        """Results in request order; ``concurrency`` defaults to the config's (8)."""
        return generate_many(
            self,
            requests,
            concurrency=concurrency or self.config.concurrency,
            breaker=breaker,
            on_result=on_result,
            stop=stop,
        )

    # --- one exchange -----------------------------------------------------------------------------------

    def headers(self, *, stream: bool = False) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def send_once(
        self,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        deadline: Deadline,
        stream: bool = False,
        method: str = "POST",
        expect_completion: bool = True,
        from_server_root: bool = False,
    ) -> Attempt:
        """One request to ``api_root + path`` (or ``server_root + path``) within the attempt's share of
        ``deadline``; never raises.

        With ``expect_completion=False`` any JSON body counts as ok (its ``payload``), e.g. for ``/models``.
        """
        config = self.config
        budget = min(config.request_timeout_s, deadline.remaining())
        if budget <= 0:
            return Attempt("timeout", f"deadline of {config.deadline_s:g}s reached")
        ends_at = time.monotonic() + budget
        slots = host_semaphore(config.base_url, config.per_host_limit)
        if not slots.acquire(timeout=budget):
            return Attempt(
                "timeout", f"no free connection slot for {config.host} within {budget:.1f}s", retryable=True
            )
        started = time.monotonic()
        try:
            timeout = httpx.Timeout(budget, connect=min(config.connect_timeout_s, budget))
            content = None if body is None else JsonBody(body)  # streamed: a 1M-token body is never copied whole
            headers = self.headers(stream=stream) | (content.headers if content is not None else {})
            with self._client.stream(
                method,
                (config.server_root if from_server_root else config.api_root) + path,
                content=content,
                headers=headers,
                timeout=timeout,
            ) as response:
                return self._read_response(
                    response, started, ends_at, stream=stream, expect_completion=expect_completion
                )
        except _OutOfTime:
            return Attempt(
                "timeout",
                f"no complete response within {budget:.1f}s",
                retryable=True,
                latency_s=time.monotonic() - started,
            )
        except _TooLarge:
            return Attempt("too_large", f"response larger than {config.max_response_bytes} bytes")
        except httpx.TimeoutException as exc:
            what = {
                httpx.ConnectTimeout: "connecting",
                httpx.ReadTimeout: "waiting for the response",
                httpx.WriteTimeout: "sending the request",
                httpx.PoolTimeout: "waiting for a pooled connection",
            }.get(type(exc), "talking to the server")
            return Attempt(
                "timeout",
                f"timed out after {time.monotonic() - started:.1f}s {what}",
                retryable=True,
                latency_s=time.monotonic() - started,
            )
        except UnsafeEndpointError as exc:
            return Attempt("blocked", self._redact(str(exc)))
        except httpx.ConnectError as exc:
            detail = self._redact(_short(str(exc) or type(exc).__name__, 160))
            if _is_tls_error(exc):
                return Attempt("tls", f"TLS handshake failed: {detail}")
            return Attempt("connect", f"connection failed: {detail}", retryable=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
            detail = self._redact(_short(str(exc) or type(exc).__name__, 160))
            return Attempt(
                "dropped",
                f"connection dropped: {detail}",
                retryable=True,
                latency_s=time.monotonic() - started,
            )
        except httpx.HTTPError as exc:  # remaining transport errors (proxy, unsupported protocol, decoding)
            detail = self._redact(_short(str(exc) or type(exc).__name__, 160))
            return Attempt("connect", f"HTTP transport error: {detail}", retryable=True)
        finally:
            slots.release()

    # --- helpers ----------------------------------------------------------------------------------------

    def _unsafe_redirect(self, current: str, location: str) -> str | None:
        """Why a redirect target is refused (redirects are never followed; this only explains), else None."""
        if self.config.allow_private:
            return None
        try:
            check_url(urljoin(current, location), allow_private=False,
                      allowed_networks=parse_networks(self.config.allowed_networks))
        except UnsafeAddressError as exc:
            return str(exc)
        except ValueError:
            return None
        return None

    def _redact(self, text: str) -> str:
        return redact(text, self.config.api_key)

    def _read_bytes(self, response: httpx.Response, ends_at: float, limit: int) -> bytes:
        buf = bytearray()
        for chunk in response.iter_bytes():
            buf += chunk
            if len(buf) > limit:
                raise _TooLarge
            if time.monotonic() > ends_at:
                raise _OutOfTime
        return bytes(buf)

    def _read_response(
        self,
        response: httpx.Response,
        started: float,
        ends_at: float,
        *,
        stream: bool,
        expect_completion: bool,
    ) -> Attempt:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            unsafe = self._unsafe_redirect(str(response.request.url), location)
            if unsafe:
                return Attempt(
                    "blocked",
                    self._redact(f"HTTP {status} redirect to {_short(location, 120)}, which is not followed: "
                                 f"{unsafe}"),
                    status=status,
                )
            return Attempt(
                "redirect",
                self._redact(f"HTTP {status} redirect to {_short(location, 120)}; use the final URL instead"),
                status=status,
            )
        if status >= 400:
            return self._error_attempt(response, ends_at, started)
        content_type = response.headers.get("content-type", "")
        if stream and content_type.startswith("text/event-stream"):
            return self._read_stream(response, started, ends_at)
        raw = self._read_bytes(response, ends_at, self.config.max_response_bytes)
        latency = time.monotonic() - started
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            kind = content_type.split(";")[0] or "unknown type"
            return Attempt("not_openai", f"HTTP {status} but the body is not JSON ({kind})", status=status)
        if not expect_completion:
            return Attempt("ok", "ok", status=status, payload=payload, latency_s=latency)
        try:
            parsed = parse_completion(payload, self.config.api_mode)
        except NotOpenAIError as exc:
            return Attempt(
                "not_openai", f"not an OpenAI-style response: {exc}", status=status, payload=payload
            )
        return Attempt("ok", "ok", status=status, payload=payload, parsed=parsed, latency_s=latency)

    def _read_stream(self, response: httpx.Response, started: float, ends_at: float) -> Attempt:
        acc = StreamAccumulator(self.config.api_mode)
        ttft: float | None = None
        size = 0
        done = False
        for data in iter_sse_data(response.iter_lines()):
            size += len(data)
            if size > self.config.max_response_bytes:
                raise _TooLarge
            if time.monotonic() > ends_at:
                raise _OutOfTime
            if data.strip() == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                return Attempt("not_openai", "a streamed event is not JSON", status=response.status_code)
            if isinstance(chunk, Mapping) and "error" in chunk and "choices" not in chunk:
                message, _ = error_details(chunk)
                return Attempt(
                    "http",
                    self._redact(f"error in stream: {_short(message or 'unknown')}"),
                    retryable=True,
                    status=response.status_code,
                )
            try:
                text = acc.feed(chunk)
            except NotOpenAIError as exc:
                return Attempt(
                    "not_openai", f"not an OpenAI-style stream: {exc}", status=response.status_code
                )
            if text and ttft is None:
                ttft = time.monotonic() - started
        latency = time.monotonic() - started
        if not done and acc.finish_reason is None:
            return Attempt(
                "dropped", "stream ended before completion", retryable=True, latency_s=latency, ttft_s=ttft
            )
        return Attempt(
            "ok", "ok", status=response.status_code, parsed=acc.result(), latency_s=latency, ttft_s=ttft,
            streamed=True,
        )

    def _error_attempt(self, response: httpx.Response, ends_at: float, started: float) -> Attempt:
        status = response.status_code
        try:
            raw = self._read_bytes(response, ends_at, _MAX_ERROR_BODY)
        except _TooLarge:
            raw = b""
        try:
            payload: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            payload = None
        message, code = error_details(payload)
        if message is None and raw and payload is None:
            message = raw[:200].decode("utf-8", "replace")
        if message is not None:
            message = self._redact(_short(message))
        phrase = response.reason_phrase or ""
        reason = f"HTTP {status} {phrase}".strip() + (f": {message}" if message else "")
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        kind: AttemptKind = "auth" if status in (401, 403) else "not_found" if status == 404 else "http"
        return Attempt(
            kind,
            self._redact(reason),
            retryable=is_retryable_status(status),
            status=status,
            retry_after=retry_after,
            payload=payload,
            latency_s=time.monotonic() - started,
            server_message=message,
            server_code=code,
        )

    def _success(self, attempt: Attempt, attempts: int) -> GenerationResult:
        parsed = attempt.parsed
        assert parsed is not None
        decode_rate = None
        if (
            attempt.ttft_s is not None
            and parsed.completion_tokens is not None
            and parsed.completion_tokens > 1
            and attempt.latency_s > attempt.ttft_s
        ):
            decode_rate = (parsed.completion_tokens - 1) / (attempt.latency_s - attempt.ttft_s)
        return GenerationResult(
            text=parsed.text or "",
            content_null=parsed.text is None,
            reasoning=parsed.reasoning,
            reasoning_field=parsed.reasoning_field,
            reasoning_tokens=parsed.reasoning_tokens,
            prompt_tokens=parsed.prompt_tokens,
            completion_tokens=parsed.completion_tokens,
            latency_s=attempt.latency_s,
            ttft_s=attempt.ttft_s,
            decode_tokens_per_s=decode_rate,
            error=None,
            attempts=attempts,
            finish_reason=parsed.finish_reason,
        )

    def _fail(
        self, reason: str, attempts: int, deadline: Deadline, breaker: CircuitBreaker | None
    ) -> GenerationResult:
        reason = self._redact(reason)
        if attempts > 1:
            reason = f"{reason} (after {attempts} attempts)"
        if breaker is not None:
            breaker.record_failure(reason)
        logger.warning("endpoint %s: sample failed: %s", self.config.host, reason)
        return GenerationResult.failure(reason, attempts=attempts, latency_s=deadline.elapsed())
