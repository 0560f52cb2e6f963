"""Pre-flight probe of an endpoint when a submission starts.

The probe exists so a broken submission fails in seconds with a message the submitter can act on, instead
of after hours of per-sample errors. One round makes a few small requests: ``/models``, two short generations,
and one more per request field the server refuses by name (it learns the server's dialect, ``dialect.Dialect``).
Transient trouble (connection errors, time-outs, 429 honouring ``Retry-After``, 5xx) is retried with backoff
within ``retry_window_s`` before the probe gives up; answers that will not change fail at once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from evalworkers.backends.base import GenerationRequest
from evalworkers.backends.dialect import Dialect, adapt
from evalworkers.backends.endpoint import Attempt, EndpointBackend, EndpointConfig, redact
from evalworkers.backends.retry import Deadline, RetryPolicy
from evalworkers.backends.tokenize import detect as detect_tokenize
from evalworkers.backends.wire import context_length, mentions_unknown_model, model_entries, route
from evalworkers.benchmark.answers import extract_answer

logger = logging.getLogger(__name__)
_JITTER = random.Random()

PROBE_QUESTION = "Reply with the single word: ready."
# Room for a reasoning model to show itself: a plain model answers in a few tokens, a reasoning model is still
# thinking (or closes its block) well within this.
PROBE_MAX_TOKENS = 256
PROBE_RETRY_WINDOW_S = 120.0
RETRYABLE_CODES = ("unreachable", "timeout", "rate_limited", "server_error")
MAX_DIALECT_SWITCHES = 3
# Plain prose, so the measured characters-per-token resembles that of the benchmark's haystacks.
_FILLER_SENTENCES = (
    "The river ran quietly past the old mill, where the keeper counted sacks of grain each morning.",
    "Travellers stopped at the inn to trade news about the weather, the roads and the price of salt.",
    "In the library a clerk copied ledgers by lamplight and filed every page in numbered boxes.",
    "Children in the square played a game with chalk lines and pebbles until the bell rang at noon.",
)
PROBE_FILLER = " ".join(_FILLER_SENTENCES * 5)


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of the pre-flight probe.

    ``code`` is one of: ok, unreachable, tls, timeout, auth, route_not_found, unknown_model, not_openai,
    context_too_small, redirect, blocked, rejected, rate_limited, server_error, reasoning_without_budget.
    ``retryable`` marks the codes worth trying again (connection errors, timeouts, 429, 5xx); ``probe`` has
    already retried them for ``retry_window_s`` and says how often in ``tries``. ``dialect`` is what the probe
    learned of the server's API dialect (``Dialect.to_json()``); ``retry_after_s`` the server's Retry-After.
    """

    ok: bool
    code: str
    message: str
    url: str
    server_context: int | None = None
    latency_s: float | None = None
    chars_per_token: float | None = None
    served_models: tuple[str, ...] = ()
    retryable: bool = False
    dialect: dict[str, Any] | None = None
    retry_after_s: float | None = None
    tries: int = 1

    def learned(self) -> Dialect:
        return Dialect.from_json(self.dialect)


def _join_names(names: tuple[str, ...], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


class _Prober:
    def __init__(
        self, config: EndpointConfig, required_context: int, backend: EndpointBackend, timeout_s: float, *,
        expects_reasoning: bool, answer_tokens: int, reasoning_advice: str,
    ):
        self.dialect = Dialect(max_tokens_field=config.max_tokens_field, stream=config.stream,
                               stream_usage=config.stream_usage)
        self.config = config
        self.required = required_context
        self.backend = backend
        self.timeout_s = timeout_s
        self.expects_reasoning = expects_reasoning
        self.answer_tokens = answer_tokens
        self.reasoning_advice = reasoning_advice
        self.gen_url = config.generation_url
        self.served: tuple[str, ...] = ()
        self.listed = False
        self.server_context: int | None = None
        self.retry_after_s: float | None = None

    def result(self, code: str, message: str, **extra: Any) -> ProbeResult:
        url = extra.pop("url", self.gen_url)
        return ProbeResult(
            ok=code == "ok",
            code=code,
            message=redact(message, self.config.api_key),
            url=url,
            server_context=self.server_context,
            served_models=self.served,
            retryable=code in RETRYABLE_CODES,
            dialect=self.dialect.to_json(),
            retry_after_s=self.retry_after_s,
            **extra,
        )

    def transport_failure(self, attempt: Attempt, url: str) -> ProbeResult | None:
        """Failures that make any further request pointless, whichever route they came from."""
        detail = attempt.reason
        if attempt.kind == "connect":
            return self.result(
                "unreachable",
                f"Could not connect to {url} ({detail}). Check the host name and port, and that the server "
                "is running and reachable from the evaluation workers.",
                url=url,
            )
        if attempt.kind == "dropped":
            return self.result(
                "unreachable",
                f"{url} closed the connection without an answer ({detail}). Check that the URL points at an "
                "HTTP API server and that no proxy or firewall cuts the connection.",
                url=url,
            )
        if attempt.kind == "tls":
            return self.result(
                "tls",
                f"The TLS (https) handshake with {url} failed ({detail}). If the server speaks plain HTTP, "
                "use an http:// URL; otherwise give the server a valid certificate.",
                url=url,
            )
        if attempt.kind == "timeout":
            return self.result(
                "timeout",
                f"{url} did not answer within {self.timeout_s:g}s ({detail}). Check that the server is up "
                "and not overloaded, then try again.",
                url=url,
            )
        if attempt.kind == "auth":
            server = f": {attempt.server_message}" if attempt.server_message else ""
            if self.config.api_key:
                fix = (
                    "Check that the API key is correct, not expired, and allowed to use model "
                    f"'{self.config.model}'."
                )
            else:
                fix = "The server needs an API key; add one to the submission."
            return self.result(
                "auth", f"{url} refused access (HTTP {attempt.status}{server}). {fix}", url=url
            )
        if attempt.kind == "blocked":
            return self.result(
                "blocked",
                f"{url} was not contacted: {detail} If the model server is on a private network, the "
                "deployment's operator can allow it (ALLOW_PRIVATE_ENDPOINTS or ENDPOINT_ALLOWED_NETWORKS).",
                url=url,
            )
        if attempt.kind == "redirect":
            return self.result("redirect", f"{url} answered with a redirect ({attempt.reason}).", url=url)
        if attempt.status == 429:
            self.retry_after_s = attempt.retry_after
            return self.result(
                "rate_limited",
                f"{url} is rate limiting requests (HTTP 429). Try again later or raise the key's rate limit.",
                url=url,
            )
        if attempt.status is not None and attempt.status >= 500:
            return self.result(
                "server_error",
                f"{url} failed with {attempt.reason}. The server seems to be in trouble; try again later.",
                url=url,
            )
        return None

    def check_models(self) -> ProbeResult | None:
        url = self.config.models_url
        attempt = self.backend.send_once(
            "/models", None, method="GET", deadline=Deadline(self.timeout_s), expect_completion=False
        )
        failure = self.transport_failure(attempt, url)
        if failure is not None:
            return failure
        entries = model_entries(attempt.payload) if attempt.ok else None
        if entries is None:  # many proxies have no /models; the generation call decides
            logger.info("probe: %s has no usable model list (%s)", url, attempt.reason)
            return None
        self.listed = True
        self.served = tuple(str(e["id"]) for e in entries)
        entry = next((e for e in entries if e["id"] == self.config.model), None)
        if entry is None:
            return None  # may be an alias; confirmed or refuted by the generation call
        self.server_context = context_length(entry)
        if self.server_context is not None and self.server_context < self.required:
            return self.result(
                "context_too_small",
                f"Model '{self.config.model}' at {self.config.api_root} reports a context window of "
                f"{self.server_context:,} tokens, but this benchmark version needs {self.required:,}. Serve "
                f"it with a larger window (for vLLM: --max-model-len {self.required}) or choose a version "
                "with shorter lengths.",
                url=url,
            )
        return None

    def send(self, prompt: str) -> Attempt:
        config = self.config
        request = (
            GenerationRequest(messages=[{"role": "user", "content": prompt}], max_new_tokens=PROBE_MAX_TOKENS)
            if config.api_mode == "chat"
            else GenerationRequest(prompt=prompt, max_new_tokens=PROBE_MAX_TOKENS)
        )
        return self.backend.send_once(
            route(config.api_mode), config.body(request), deadline=Deadline(self.timeout_s), stream=config.stream
        )

    def generate(self, prompt: str) -> Attempt:
        """One generation; a refusal naming a field we can change switches the dialect and tries again."""
        attempt = self.send(prompt)
        for _ in range(MAX_DIALECT_SWITCHES):
            if attempt.ok:
                break
            switched = adapt(self.dialect, status=attempt.status, message=attempt.server_message,
                             payload=attempt.payload)
            if switched is None:
                break
            logger.info("probe %s: %s", self.config.host, switched.switched[-1])
            self.use(switched)
            attempt = self.send(prompt)
        return attempt

    def use(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.config = dataclasses.replace(self.config, **dialect.config_fields())

    def learn_from(self, attempt: Attempt) -> None:
        """Streaming and usage as the first answer showed them; a streamed answer without usage is asked once
        more without streaming, and when that reports usage the server is not streamed (verified lengths are
        worth more than a time to first token)."""
        parsed = attempt.parsed
        assert parsed is not None
        reports_usage = parsed.prompt_tokens is not None
        if self.config.stream:
            self.dialect = dataclasses.replace(self.dialect, streams=attempt.streamed)
            if not attempt.streamed:
                self.use(dataclasses.replace(self.dialect, stream=False,
                                             switched=(*self.dialect.switched, "streaming turned off: the server "
                                                       "answered a streamed request with one JSON body")))
            elif not reports_usage:
                plain = dataclasses.replace(self.dialect, stream=False)
                saved = self.dialect
                self.use(plain)
                retry = self.send(PROBE_QUESTION)
                if retry.ok and retry.parsed is not None and retry.parsed.prompt_tokens is not None:
                    reports_usage = True
                    self.use(dataclasses.replace(plain, switched=(
                        *plain.switched, "streaming turned off: usage is reported only without streaming")))
                else:
                    self.use(saved)
        self.dialect = dataclasses.replace(self.dialect, reports_usage=reports_usage)

    def learn_sizing(self, first: Attempt, chars_per_token: float | None) -> None:
        """The server's tokenize route, if any, and the tokens it adds around a prompt's text: the first prompt's
        reported count minus the count of its text (exact with the route, estimated from the ratio without)."""
        found = detect_tokenize(self.backend, PROBE_QUESTION, timeout_s=self.timeout_s)
        reported = first.parsed.prompt_tokens if first.parsed else None
        overhead = None
        if reported is not None and found is not None:
            overhead = reported - found[1]
        elif reported is not None and chars_per_token:
            overhead = round(reported - len(PROBE_QUESTION) / chars_per_token)
        self.dialect = dataclasses.replace(
            self.dialect, tokenize=found[0] if found else "",
            template_overhead_tokens=None if overhead is None else max(0, overhead))

    def reasoning_seen(self, attempt: Attempt) -> str:
        """How the first answer showed reasoning ("" when it did not): markers, a field, or a chat reply to a
        one-word question still unfinished after ``PROBE_MAX_TOKENS`` tokens (reasoning without markers)."""
        parsed = attempt.parsed
        assert parsed is not None
        found = extract_answer(parsed.text, reasoning_field=parsed.reasoning,
                               reasoning_field_name=parsed.reasoning_field, finish_reason=parsed.finish_reason)
        if found.reasoned:
            return found.found_by
        if parsed.reasoning_tokens:  # reasoning the server keeps to itself (OpenAI's reasoning models)
            return f"{parsed.reasoning_tokens} reasoning tokens reported in usage, their text not sent"
        if parsed.finish_reason == "length" and self.config.api_mode == "chat":
            # (a completions endpoint may just continue the text: that is not reasoning)
            return f"no one-word answer within {PROBE_MAX_TOKENS} tokens"
        return ""

    def reasoning_without_budget(self, how: str) -> ProbeResult:
        sent = {k: v for k, v in (self.config.extra_body or {}).items()
                if k in ("chat_template_kwargs", "reasoning_effort", "include_reasoning")}
        if sent:
            turn_off = (f"The request options sent ({json.dumps(sent)}) did not stop it: the server or its chat "
                        "template may ignore them (check the template's switch name, or serve the model without "
                        "its reasoning mode)")
        else:
            turn_off = ('Either turn thinking off with a request option, e.g. {"chat_template_kwargs": '
                        '{"enable_thinking": false}} (Qwen3 and similar templates on vLLM or SGLang) or '
                        '{"reasoning_effort": "none"} (APIs that take an effort)')
        return self.result(
            "reasoning_without_budget",
            f"'{self.config.model}' at {self.config.api_root} answered as a reasoning model ({how}), but this "
            f"benchmark version gives no reasoning budget: each task allows only up to "
            f"{self.answer_tokens} new tokens, so its answers would be cut off while thinking and "
            f"score 0. {turn_off}, or submit it on a version that expects reasoning{self.reasoning_advice}.",
        )

    def explain_generation_failure(self, attempt: Attempt) -> ProbeResult:
        failure = self.transport_failure(attempt, self.gen_url)
        if failure is not None:
            return failure
        config = self.config
        unknown = mentions_unknown_model(attempt.server_message, attempt.server_code, config.model)
        if attempt.status in (400, 404, 422) and unknown and config.model in self.served:
            server = f" ({attempt.server_message})" if attempt.server_message else ""
            return self.result(
                "unknown_model",
                f"The server at {config.api_root} lists '{config.model}' among its models (GET /models), yet "
                f"refused to generate with it: {attempt.reason.split(':')[0]}{server}. The model may still be "
                "loading, be served only on the other API route (this submission uses "
                f"'{config.api_mode}', {route(config.api_mode)}), or not be allowed for this API key; check the "
                "server's log and configuration.",
            )
        if attempt.status in (400, 404, 422) and (
            unknown or (self.listed and config.model not in self.served)
        ):
            listing = (
                f" It lists: {_join_names(self.served)}. Use one of these names exactly."
                if self.served
                else f" The server says: {attempt.server_message}"
                if attempt.server_message
                else ""
            )
            return self.result(
                "unknown_model",
                f"The server at {config.api_root} does not know a model named '{config.model}'.{listing}",
            )
        if attempt.kind == "not_found":
            generic = (attempt.server_message or "").strip().lower() in ("", "not found", "404 not found")
            server_says = "" if generic else f" The server says: {attempt.server_message}"
            return self.result(
                "route_not_found",
                f"{self.gen_url} returned HTTP 404 Not Found. The base URL should be the API root, with or "
                "without a trailing /v1 (e.g. https://host/v1), and the API mode must match the server "
                f"('{config.api_mode}' uses {route(config.api_mode)}).{server_says}",
            )
        if attempt.kind in ("not_openai", "too_large"):
            return self.result(
                "not_openai",
                f"{self.gen_url} answered, but not like an OpenAI-compatible API ({attempt.reason}). Check "
                "that the URL points at the API itself, not a web page or another kind of service, and that "
                "the API mode (chat or completions) is right.",
            )
        sent = ", ".join(sorted(config.body(GenerationRequest(prompt="-", max_new_tokens=1))))
        switched = f" Already tried: {'; '.join(self.dialect.switched)}." if self.dialect.switched else ""
        return self.result(
            "rejected",
            f"{self.gen_url} rejected the probe request ({attempt.reason}). The request carried the fields "
            f"{sent}; if the server's reason names one of them (or one of the submission's request options), "
            f"the server does not accept it: remove that request option, or serve the model with a server "
            f"that accepts the standard OpenAI fields.{switched}",
        )

    def run(self) -> ProbeResult:
        failure = self.check_models()
        if failure is not None:
            return failure
        first = self.generate(PROBE_QUESTION)
        if not first.ok:
            return self.explain_generation_failure(first)
        self.learn_from(first)
        how = self.reasoning_seen(first)
        self.dialect = dataclasses.replace(self.dialect, reasoning=how)
        if how and not self.expects_reasoning:
            return self.reasoning_without_budget(how)
        second = self.generate(PROBE_FILLER + "\n\n" + PROBE_QUESTION)
        chars_per_token = _chars_per_token(first, second)
        self.learn_sizing(first, chars_per_token)
        context = (
            f"context window {self.server_context:,} tokens"
            if self.server_context
            else "context not reported"
        )
        return self.result(
            "ok",
            f"{self.gen_url} answered as '{self.config.model}' in {first.latency_s:.2f}s ({context}).",
            latency_s=first.latency_s,
            chars_per_token=chars_per_token,
        )


def _chars_per_token(short: Attempt, long: Attempt) -> float | None:
    """Slope between two prompts, so the chat template's fixed overhead cancels out."""
    short_tokens = short.parsed.prompt_tokens if short.parsed else None
    long_tokens = long.parsed.prompt_tokens if long.ok and long.parsed else None
    extra_chars = len(PROBE_FILLER) + 2
    if short_tokens is not None and long_tokens is not None and long_tokens > short_tokens:
        return extra_chars / (long_tokens - short_tokens)
    if long_tokens:
        return (extra_chars + len(PROBE_QUESTION)) / long_tokens
    return None


def probe(
    config: EndpointConfig,
    required_context: int,
    *,
    client: httpx.Client | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout_s: float = 30.0,
    retry_window_s: float = PROBE_RETRY_WINDOW_S,
    expects_reasoning: bool = False,
    answer_tokens: int = 128,
    reasoning_advice: str = "",
) -> ProbeResult:
    """Check that ``config`` reaches a server that accepts the key, knows the model and fits the context, and
    learn its dialect (apply it with ``dataclasses.replace(config, **result.learned().config_fields())``).

    ``required_context`` should include room for the answer (longest length + max new tokens). Each request is
    bounded by ``timeout_s``. A round that fails with a retryable code is tried again after a backoff (1, 2, 4…
    30 s, or the server's Retry-After) while ``retry_window_s`` lasts. A model that shows reasoning fails with
    ``reasoning_without_budget`` unless ``expects_reasoning`` (the version gives a reasoning budget); the
    message quotes ``answer_tokens`` (the most new tokens a task allows) and ends with ``reasoning_advice``
    (e.g. ", such as 'v1-reasoning'"). Never raises for network or server trouble.
    """
    if required_context < 0:
        raise ValueError("required_context must be >= 0")
    probe_config = dataclasses.replace(
        config,
        request_timeout_s=min(config.request_timeout_s, timeout_s),
        deadline_s=min(config.deadline_s, timeout_s),
        max_retries=0,
    )
    policy = RetryPolicy(max_retries=1_000, backoff_base_s=1.0, backoff_cap_s=30.0, retry_after_cap_s=60.0)
    started = time.monotonic()
    tries = 0
    with EndpointBackend(probe_config, client=client, transport=transport) as backend:
        while True:
            tries += 1
            result = _Prober(probe_config, required_context, backend, timeout_s, expects_reasoning=expects_reasoning,
                             answer_tokens=answer_tokens, reasoning_advice=reasoning_advice).run()
            left = retry_window_s - (time.monotonic() - started)
            if result.ok or not result.retryable:
                break
            wait = policy.delay(tries - 1, result.retry_after_s, _JITTER)
            if wait >= left:
                break
            logger.info("probe %s: %s; trying again in %.1fs", config.host, result.code, wait)
            time.sleep(wait)
    if tries > 1:
        note = (f" (after {tries} tries over {time.monotonic() - started:.0f}s)" if not result.ok
                else f" (on try {tries}, after transient failures)")
        result = dataclasses.replace(result, message=result.message + note, tries=tries)
    logger.info(
        "probe %s model=%s: %s (%.2fs)", config.host, config.model, result.code, time.monotonic() - started
    )
    return result
