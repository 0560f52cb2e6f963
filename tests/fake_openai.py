"""A real, scriptable OpenAI-compatible HTTP server for tests (no mocks of the HTTP client).

It listens on 127.0.0.1 on an ephemeral port in a background thread and serves ``GET /v1/models``,
``POST /v1/chat/completions`` and ``POST /v1/completions`` (JSON or SSE streaming, with ``usage``).

Usage::

    from tests.fake_openai import FakeOpenAI, Fault

    with FakeOpenAI(models=("tiny",), api_key="sk-test", max_model_len=8192) as server:
        config = EndpointConfig(base_url=server.base_url, model="tiny", api_key="sk-test")
        server.fail_next(2, status=503)            # the next two generation requests get 503
        server.fail_next(1, status=429, retry_after="1")
        server.drop_next(1)                        # close the connection without answering
        server.slow_next(1, delay_s=2.0)           # answer normally, but only after 2 s
        server.respond_raw({"status": "ok"}, times=None)   # every request: a non-OpenAI body
        server.inject(Fault(status=500, paths=("/v1/models",)), times=3)
        ...
        server.max_inflight, server.count("/v1/chat/completions"), server.requests[-1].body

The pytest fixture ``fake_openai`` (a fresh server per test) can be registered from a conftest with
``from tests.fake_openai import fake_openai``.

The "model" is a pluggable function ``answer(call: FakeCall) -> str``; the default, ``echo_last_number``,
answers with the last 7-digit number in the prompt, which makes needle-in-a-haystack samples come out right
and gives a realistic mix of right and wrong answers when a test plants decoys or omits the needle. Token
counts are deterministic: ``ceil(chars / chars_per_token)`` per text, plus a fixed overhead per chat message.

Settings (``api_key``, ``answer``, ``latency_s``, ``ttft_s``, ``chunk_delay_s``, ``max_model_len``, ...) are
plain attributes read on every request, so a test may change them while the server runs.

Dialect switches, one per behaviour of a real server family:
- ``reasoning``: a function giving the reasoning text, returned in the field ``reasoning_field``
  (``reasoning_content`` as in DeepSeek/vLLM, or ``reasoning``); reasoning spends the token budget first, so a
  small ``max_tokens`` ends the reply inside it with ``"content": null`` and ``finish_reason: "length"``;
- ``refuse_fields``: request fields answered with the error their servers give (``max_tokens`` as OpenAI's
  reasoning models, ``max_completion_tokens`` as older vLLM, ``stream_options`` as FastAPI's 422);
- ``streams=False``: a streamed request is answered with one JSON body; ``report_usage=False``: no ``usage``;
- ``refuse_listed_model``: the model is listed by /v1/models, yet generation answers 404 "model not found";
- ``digits_as_tokens``: every digit is a token of its own (as in Llama 3, Qwen and DeepSeek tokenizers), so
  number-heavy text has far fewer characters per token than prose;
- ``max_model_len``: reported by /v1/models and enforced as vLLM does (400 when prompt + max_tokens exceed it);
- ``hidden_reasoning_tokens``: reasons for this many tokens without sending the text, as OpenAI's reasoning
  models do: reported in ``usage.completion_tokens_details.reasoning_tokens``, spent from ``max_tokens`` first;
- ``tokenize``: serve ``POST /tokenize`` in the style of ``vllm``, ``llama.cpp`` or ``tgi`` (None: no route);
- ``prefill_s_per_kchar``: a generation waits this long per 1,000 prompt characters it reads before its first token;
  with ``prefix_cache`` it reads only what follows the longest prefix it already read in an earlier request (as
  vLLM's automatic prefix caching and SGLang's radix cache do), so a conversation's later turns start sooner.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"
GENERATION_PATHS: tuple[str, ...] = (CHAT_PATH, COMPLETIONS_PATH)
ALL_PATHS: tuple[str, ...] = (MODELS_PATH, *GENERATION_PATHS)

_SEVEN_DIGITS = re.compile(r"(?<!\d)\d{7}(?!\d)")


@dataclass(frozen=True)
class FakeCall:
    """What the fake model is asked: ``prompt`` is the completions prompt or the chat contents joined."""

    path: str
    model: str
    prompt: str
    messages: list[dict[str, Any]] | None
    max_tokens: int | None
    stop: list[str] | None
    body: dict[str, Any]


AnswerFn = Callable[[FakeCall], str]


def echo_last_number(call: FakeCall) -> str:
    """The last 7-digit number in the prompt (the usual needle), or a refusal when there is none."""
    found = _SEVEN_DIGITS.findall(call.prompt)
    return found[-1] if found else "I don't know."


def fixed_answer(text: str) -> AnswerFn:
    return lambda call: text


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour for the next request(s) on ``paths``.

    ``delay_s`` waits first; then ``drop`` closes the connection without a response, or ``status`` answers
    with that status and an OpenAI-style error body (or ``body`` if given), or ``body`` alone goes with 200.
    A fault with only ``delay_s`` delays a normal answer.
    """

    status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    drop: bool = False
    body: bytes | str | Mapping[str, Any] | list[Any] | None = None
    content_type: str = "application/json"
    message: str | None = None
    paths: tuple[str, ...] = GENERATION_PATHS
    match: Callable[[Any], bool] | None = None  # only requests whose decoded body this accepts


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    started: float
    status: int | None = None
    fault: Fault | None = None
    usage: dict[str, int] | None = None


@dataclass
class _ScriptedFault:
    fault: Fault
    remaining: int | None  # None: every matching request


def count_tokens(text: str, chars_per_token: float) -> int:
    return math.ceil(len(text) / chars_per_token) if text else 0


class FakeOpenAI:
    """The server; use as a context manager (or call ``start``/``stop``)."""

    def __init__(
        self,
        *,
        models: Sequence[str] = ("fake-model",),
        api_key: str | None = None,
        answer: AnswerFn = echo_last_number,
        max_model_len: int | None = None,
        context_field: str = "max_model_len",
        chars_per_token: float = 4.0,
        message_overhead_tokens: int = 4,
        latency_s: float = 0.0,
        ttft_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        serve_models: bool = True,
        stream_usage: bool = True,
        host: str = "127.0.0.1",
        reasoning: AnswerFn | None = None,
        reasoning_field: str = "reasoning_content",
        refuse_fields: Sequence[str] = (),
        streams: bool = True,
        report_usage: bool = True,
        refuse_listed_model: bool = False,
        digits_as_tokens: bool = False,
        tokenize: str | None = None,
        hidden_reasoning_tokens: int = 0,
        prefill_s_per_kchar: float = 0.0,
        prefix_cache: bool = False,
    ) -> None:
        self.host = host  # any 127.x.y.z address works on Linux; SSRF tests use a second one
        self.models = list(models)
        self.api_key = api_key
        self.answer = answer
        self.max_model_len = max_model_len
        self.context_field = context_field
        self.chars_per_token = chars_per_token
        self.message_overhead_tokens = message_overhead_tokens
        self.latency_s = latency_s
        self.ttft_s = ttft_s
        self.chunk_delay_s = chunk_delay_s
        self.serve_models = serve_models
        self.stream_usage = stream_usage
        self.reasoning = reasoning
        self.reasoning_field = reasoning_field
        self.refuse_fields = tuple(refuse_fields)
        self.streams = streams
        self.report_usage = report_usage
        self.refuse_listed_model = refuse_listed_model
        self.digits_as_tokens = digits_as_tokens
        self.tokenize = tokenize
        self.hidden_reasoning_tokens = hidden_reasoning_tokens
        self.prefill_s_per_kchar = prefill_s_per_kchar
        self.prefix_cache = prefix_cache
        self.cached_prompts: list[str] = []

        self.requests: list[RecordedRequest] = []
        self.inflight = 0
        self.max_inflight = 0
        self._faults: deque[_ScriptedFault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._httpd = _Server((self.host, 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Server root without /v1 (the backend accepts either)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    # --- fault scripting --------------------------------------------------------------------------------

    def inject(self, fault: Fault, times: int | None = 1) -> None:
        """Queue ``fault`` for the next ``times`` matching requests (None: all of them, until cleared)."""
        with self._lock:
            self._faults.append(_ScriptedFault(fault, times))

    def fail_next(
        self, n: int = 1, *, status: int = 503, retry_after: str | None = None, message: str | None = None
    ) -> None:
        self.inject(Fault(status=status, retry_after=retry_after, message=message), times=n)

    def drop_next(self, n: int = 1) -> None:
        self.inject(Fault(drop=True), times=n)

    def slow_next(self, n: int = 1, *, delay_s: float) -> None:
        self.inject(Fault(delay_s=delay_s), times=n)

    def respond_raw(
        self,
        body: bytes | str | Mapping[str, Any] | list[Any],
        *,
        status: int = 200,
        content_type: str = "application/json",
        times: int | None = None,
        paths: tuple[str, ...] = ALL_PATHS,
    ) -> None:
        """Answer with exactly ``body`` (e.g. a non-OpenAI JSON object or an HTML page)."""
        self.inject(Fault(status=status, body=body, content_type=content_type, paths=paths), times=times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str, body: Any = None) -> Fault | None:
        with self._lock:
            for scripted in self._faults:
                if path in scripted.fault.paths and (scripted.fault.match is None or scripted.fault.match(body)):
                    if scripted.remaining is not None:
                        scripted.remaining -= 1
                        if scripted.remaining <= 0:
                            self._faults.remove(scripted)
                    return scripted.fault
        return None

    # --- observations -----------------------------------------------------------------------------------

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    @property
    def generation_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path in GENERATION_PATHS]

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_inflight = 0

    def _enter(self) -> None:
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)

    def _leave(self) -> None:
        with self._lock:
            self.inflight -= 1

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def sleep(self, seconds: float) -> bool:
        """Wait, waking early when the server stops; False if it is stopping."""
        return not self._stopping.wait(seconds) if seconds > 0 else not self._stopping.is_set()

    # --- the fake model ---------------------------------------------------------------------------------

    def prefill_s(self, prompt: str) -> float:
        """Seconds to read ``prompt``: every character, or with ``prefix_cache`` only those after the longest
        prefix an earlier request read (which it then keeps)."""
        with self._lock:
            cached = 0
            if self.prefix_cache:
                cached = max((len(os.path.commonprefix([seen, prompt])) for seen in self.cached_prompts), default=0)
                self.cached_prompts.append(prompt)
        return (len(prompt) - cached) / 1000 * self.prefill_s_per_kchar

    def text_tokens(self, text: str) -> int:
        """This server's tokenizer: characters per token, digits apart when ``digits_as_tokens``."""
        if not self.digits_as_tokens:
            return count_tokens(text, self.chars_per_token)
        digits = sum(ch.isdigit() for ch in text)
        return digits + count_tokens("".join(ch for ch in text if not ch.isdigit()), self.chars_per_token)

    def prompt_tokens(self, call: FakeCall) -> int:
        if call.messages is None:
            return self.text_tokens(call.prompt)
        total = 3
        for message in call.messages:
            total += self.message_overhead_tokens + self.text_tokens(_content(message))
        return total

    def complete_with_reasoning(self, call: FakeCall) -> tuple[str, str | None, str]:
        """(reasoning, content or None, finish_reason) after applying stop strings and the max_tokens budget,
        which reasoning spends first."""
        reasoning = self.reasoning(call) if self.reasoning is not None else ""
        text = self.answer(call)
        hidden = self.hidden_reasoning_tokens
        if hidden and call.max_tokens is not None and call.max_tokens <= hidden:
            return "", "", "length"
        finish = "stop"
        for stop in call.stop or []:
            if stop and stop in text:
                text = text[: text.index(stop)]
        if call.max_tokens is not None:
            limit = int(call.max_tokens * self.chars_per_token)
            if len(reasoning) >= limit and reasoning:
                return reasoning[:limit], None, "length"
            if len(reasoning) + len(text) > limit:
                text, finish = text[: limit - len(reasoning)], "length"
        if reasoning and not text:
            return reasoning, None, finish
        return reasoning, text, finish


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return str(content or "")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, dropped tests) are expected here; stay quiet."""


def _error_body(message: str, type_: str, code: str | int | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


#: How each server family refuses a request field: (status, body), as in their public bug reports.
REFUSALS: dict[str, tuple[int, dict[str, Any]]] = {
    # OpenAI's reasoning models
    "max_tokens": (400, _error_body(
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
        "instead.", "invalid_request_error", "unsupported_parameter", "max_tokens")),
    # an older vLLM (pydantic's extra="forbid")
    "max_completion_tokens": (400, {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                                    "message": "[{'type': 'extra_forbidden', 'loc': ('body', "
                                               "'max_completion_tokens'), 'msg': 'Extra inputs are not permitted'}]"}),
    # a FastAPI server's validation error
    "stream_options": (422, {"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options", "include_usage"],
                                         "msg": "Extra inputs are not permitted", "input": True}]}),
    "stream": (400, _error_body("Streaming is not supported by this server.", "invalid_request_error", None,
                                "stream")),
}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections do not pin a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        # A TLS ClientHello on this plain-HTTP port: answer as nginx does, so the handshake fails fast.
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":
            with contextlib.suppress(OSError):
                self.connection.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            return
        super().handle()

    # --- plumbing ---------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = RecordedRequest(method, path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
        fake._record(record)
        generation = path in GENERATION_PATHS and method == "POST"
        if generation:
            fake._enter()
        try:
            self._respond(method, path, body, record)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if generation:
                fake._leave()

    def _respond(self, method: str, path: str, body: Any, record: RecordedRequest) -> None:
        fake = self.fake
        fault = fake._take_fault(path, body)
        record.fault = fault
        if fault is not None:
            if not fake.sleep(fault.delay_s):
                return self._drop()
            if fault.drop:
                return self._drop()
            if fault.status is not None or fault.body is not None:
                status = fault.status or 200
                record.status = status
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
                if fault.body is None:
                    message = fault.message or f"scripted failure {status}"
                    return self._send_json(status, _error_body(message, "server_error", status), headers)
                if isinstance(fault.body, bytes | str):
                    data = fault.body.encode() if isinstance(fault.body, str) else fault.body
                    return self._send_bytes(status, data, fault.content_type, headers)
                return self._send_json(status, fault.body, headers)

        if path == "/tokenize" and fake.tokenize and method == "POST":
            return self._tokenize(body, record)
        if not path.startswith("/v1/") or path not in ALL_PATHS:
            record.status = 404
            return self._send_json(404, {"detail": "Not Found"})
        if (path == MODELS_PATH) != (method == "GET"):
            record.status = 405
            return self._send_json(405, {"detail": "Method Not Allowed"})

        if fake.api_key is not None:
            given = self.headers.get("Authorization", "")
            if given != f"Bearer {fake.api_key}":
                record.status = 401
                presented = given.removeprefix("Bearer ").strip()
                # Real servers echo (part of) the key they got; echo it all to test that clients redact it.
                message = f"Incorrect API key provided: {presented}." if presented else "You didn't provide an API key."
                return self._send_json(401, _error_body(message, "invalid_request_error", "invalid_api_key"))

        if path == MODELS_PATH:
            if not fake.serve_models:
                record.status = 404
                return self._send_json(404, {"detail": "Not Found"})
            record.status = 200
            return self._send_json(200, {"object": "list", "data": [self._model_entry(m) for m in fake.models]})

        if not fake.sleep(fake.latency_s):
            return self._drop()
        self._generate(path, body, record)

    def _model_entry(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": name, "object": "model", "created": 0, "owned_by": "fake-openai"}
        if self.fake.max_model_len is not None:
            entry[self.fake.context_field] = self.fake.max_model_len
        return entry

    def _tokenize(self, body: Any, record: RecordedRequest) -> None:
        fake = self.fake
        field = {"vllm": "prompt", "llama.cpp": "content", "tgi": "inputs"}[fake.tokenize]
        text = body.get(field) if isinstance(body, dict) else None
        if not isinstance(text, str):
            record.status = 422
            return self._send_json(422, {"detail": f"'{field}' is required"})
        n = fake.text_tokens(text)
        record.status = 200
        if fake.tokenize == "vllm":
            return self._send_json(200, {"count": n, "max_model_len": fake.max_model_len, "tokens": list(range(n))})
        if fake.tokenize == "llama.cpp":
            return self._send_json(200, {"tokens": list(range(n))})
        return self._send_json(200, [{"id": i, "text": "", "start": 0, "stop": 0} for i in range(n)])

    def _bad_request(self, record: RecordedRequest, message: str, param: str | None = None) -> None:
        record.status = 400
        self._send_json(400, _error_body(message, "invalid_request_error", None, param))

    def _generate(self, path: str, body: Any, record: RecordedRequest) -> None:
        fake = self.fake
        if not isinstance(body, dict):
            return self._bad_request(record, "The request body must be a JSON object.")
        model = body.get("model")
        for name in fake.refuse_fields:
            if name in body and (name != "stream" or body.get("stream")):
                record.status, refusal = REFUSALS[name]
                return self._send_json(record.status, refusal)
        if fake.refuse_listed_model and model in fake.models:
            record.status = 404
            message = f"The model `{model}` does not exist or is not loaded."
            return self._send_json(404, _error_body(message, "invalid_request_error", "model_not_found", "model"))
        if model not in fake.models:
            record.status = 404
            message = f"The model `{model}` does not exist."
            return self._send_json(404, _error_body(message, "invalid_request_error", "model_not_found", "model"))
        messages: list[dict[str, Any]] | None = None
        if path == CHAT_PATH:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return self._bad_request(record, "'messages' is required.", "messages")
            prompt = "\n".join(_content(m) for m in messages if isinstance(m, Mapping))
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return self._bad_request(record, "'prompt' is required.", "prompt")
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        stop = body.get("stop")
        call = FakeCall(
            path=path,
            model=model,
            prompt=prompt,
            messages=messages,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            stop=[stop] if isinstance(stop, str) else stop if isinstance(stop, list) else None,
            body=body,
        )
        if fake.max_model_len is not None and call.max_tokens is not None:
            asked = fake.prompt_tokens(call) + call.max_tokens
            if asked > fake.max_model_len:  # vLLM's refusal, word for word in substance
                return self._bad_request(
                    record, f"This model's maximum context length is {fake.max_model_len} tokens. However, you "
                            f"requested {asked} tokens ({asked - call.max_tokens} in the messages, {call.max_tokens} "
                            "in the completion). Please reduce the length of the messages or completion.")
        if fake.prefill_s_per_kchar and not fake.sleep(fake.prefill_s(prompt)):
            return self._drop()
        reasoning, content, finish = fake.complete_with_reasoning(call)
        text = content or ""
        usage: dict[str, Any] = {
            "prompt_tokens": fake.prompt_tokens(call),
            "completion_tokens": fake.text_tokens(text) + fake.text_tokens(reasoning),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        hidden = min(fake.hidden_reasoning_tokens, call.max_tokens or fake.hidden_reasoning_tokens)
        if reasoning or hidden:
            usage["completion_tokens_details"] = {"reasoning_tokens": fake.text_tokens(reasoning) + hidden}
            usage["completion_tokens"] += hidden
        record.usage = usage
        record.status = 200
        chat = path == CHAT_PATH
        if body.get("stream") and fake.streams:
            include_usage = fake.stream_usage and bool((body.get("stream_options") or {}).get("include_usage"))
            return self._stream(chat, model, text, finish, usage if include_usage and fake.report_usage else None,
                                reasoning)
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": content if reasoning else text}
            if reasoning:
                choice["message"][fake.reasoning_field] = reasoning
        else:
            choice["text"] = text
        payload = {
            "id": "cmpl-fake",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
        }
        if fake.report_usage:
            payload["usage"] = usage
        self._send_json(200, payload)

    def _stream(self, chat: bool, model: str, text: str, finish: str, usage: dict[str, Any] | None,
                reasoning: str = "") -> None:
        fake = self.fake
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        kind = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
            payload = {"id": "cmpl-fake", "object": kind, "created": 0, "model": model, "choices": choices}
            payload.update(extra or {})
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

        def piece(content: str, finish_reason: str | None = None) -> dict[str, Any]:
            if chat:
                return {"index": 0, "delta": {"content": content}, "finish_reason": finish_reason}
            return {"index": 0, "text": content, "finish_reason": finish_reason}

        if chat:
            event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if not fake.sleep(fake.ttft_s):
            return self._drop()
        step = max(1, int(fake.chars_per_token))
        for start in range(0, len(reasoning) if chat else 0, step):
            event([{"index": 0, "delta": {fake.reasoning_field: reasoning[start : start + step]},
                    "finish_reason": None}])
        for i, start in enumerate(range(0, len(text), step)):
            if i and not fake.sleep(fake.chunk_delay_s):
                return self._drop()
            event([piece(text[start : start + step])])
        event([{**piece(""), "finish_reason": finish}])
        if usage is not None:
            event([], {"usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fresh fake OpenAI-compatible server for one test."""
    with FakeOpenAI() as server:
        yield server
