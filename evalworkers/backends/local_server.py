"""A local model served as an OpenAI-compatible endpoint (chat, completions, models), on 127.0.0.1 only.

It lets the endpoint path (form -> `api` queue -> httpx) run against a real model. Generation is greedy and one
request at a time; `temperature` and other sampling fields are accepted and ignored.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from evalworkers.backends.base import GenerationRequest
from evalworkers.backends.local import LocalBackend

log = logging.getLogger(__name__)
MAX_BODY = 8 * 2**20
DEFAULT_MAX_TOKENS = 256


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


def request_from(body: Any, *, chat: bool, served_name: str, window: int | None) -> tuple[GenerationRequest, bool]:
    """The generation request an OpenAI body asks for, and whether to stream; BadRequest names the field."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    model = body.get("model")
    if model not in (None, served_name):
        raise BadRequest(f"The model `{model}` does not exist; this server serves `{served_name}`.", 404,
                         "model_not_found")
    raw_max = body.get("max_completion_tokens", body.get("max_tokens", DEFAULT_MAX_TOKENS))
    if not isinstance(raw_max, int) or isinstance(raw_max, bool) or raw_max < 1:
        raise BadRequest("max_tokens must be a positive integer")
    if window:
        raw_max = min(raw_max, window)
    stream = bool(body.get("stream", False))
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages):
            raise BadRequest("messages must be a non-empty list of {role, content} objects with text content")
        return GenerationRequest(messages=messages, max_new_tokens=raw_max), stream
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    return GenerationRequest(prompt=prompt, max_new_tokens=raw_max), stream


class Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, exc: BadRequest) -> None:
        self._json(exc.status, {"error": {"message": str(exc), "type": exc.kind, "code": exc.kind}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            srv = self.server
            self._json(200, {"object": "list", "data": [{
                "id": srv.served_name, "object": "model", "created": srv.started, "owned_by": "local",
                "max_model_len": srv.backend.loaded.context_window,
                "kv_method": srv.backend.plan.method, "kv_budget": srv.backend.plan.budget,
                "dtype": srv.backend.loaded.dtype_name,
                "device": str(srv.backend.loaded.model.device)}]})
            return
        self._error(BadRequest(f"no route {self.path}; try /v1/models", 404, "not_found"))

    def do_POST(self) -> None:
        path = self.path.rstrip("/")
        chat = path.endswith("/chat/completions")
        if path not in ("/v1/chat/completions", "/v1/completions", "/chat/completions", "/completions"):
            self._error(BadRequest(f"no route {self.path}; try /v1/chat/completions", 404, "not_found"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise BadRequest(f"the body is larger than {MAX_BODY} bytes", 413)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                raise BadRequest("the body is not valid JSON") from None
            request, stream = request_from(body, chat=chat, served_name=self.server.served_name,
                                           window=self.server.backend.loaded.context_window)
        except BadRequest as exc:
            self._error(exc)
            return
        if stream:
            self._stream(request, chat, bool((body.get("stream_options") or {}).get("include_usage")))
            return
        result = self.server.backend.generate(request)
        if not result.ok:
            self._error(BadRequest(result.error or "generation failed", 500 if "memory" in (result.error or "")
                                   else 400, "server_error"))
            return
        choice: dict[str, Any] = {"index": 0, "finish_reason": result.finish_reason}
        choice.update({"message": {"role": "assistant", "content": result.text}} if chat else {"text": result.text})
        self._json(200, {"id": f"cmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion" if chat
                         else "text_completion", "created": int(time.time()), "model": self.server.served_name,
                         "choices": [choice], "usage": _usage(result.prompt_tokens, result.completion_tokens)})

    def _stream(self, request: GenerationRequest, chat: bool, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        ident = f"cmpl-{uuid.uuid4().hex[:12]}"
        kind = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
            payload = {"id": ident, "object": kind, "created": int(time.time()), "model": self.server.served_name,
                       "choices": choices, **(extra or {})}
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

        def piece(text: str, finish: str | None = None) -> dict[str, Any]:
            return ({"index": 0, "delta": {"content": text}, "finish_reason": finish} if chat
                    else {"index": 0, "text": text, "finish_reason": finish})

        if chat:
            event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        result = self.server.backend.generate(request, on_text=lambda text: event([piece(text)]))
        event([piece("", result.finish_reason or "stop")])
        if include_usage:
            event([], {"usage": _usage(result.prompt_tokens, result.completion_tokens)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _usage(prompt: int | None, completion: int | None) -> dict[str, int]:
    return {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0,
            "total_tokens": (prompt or 0) + (completion or 0)}


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend: LocalBackend, served_name: str, port: int) -> None:
        self.backend, self.served_name, self.started = backend, served_name, int(time.time())
        super().__init__(("127.0.0.1", port), Handler)  # never another interface: a local model is not public
