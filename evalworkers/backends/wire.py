"""The OpenAI wire format: request bodies, response and SSE parsing, error bodies, /v1/models entries.

Pure functions over decoded JSON so the shapes that servers actually send (OpenAI, vLLM, llama.cpp, TGI,
proxies) can be tested without HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from evalworkers.backends.base import GenerationRequest
from evalworkers.benchmark.answers import reasoning_from_fields

ApiMode = Literal["chat", "completions"]

#: Fields under which servers report a model's context window in /v1/models entries.
CONTEXT_FIELDS = (
    "max_model_len",
    "context_length",
    "max_context_length",
    "context_window",
    "max_input_tokens",
)


_UNKNOWN_MODEL_PHRASES = (
    "not found",
    "does not exist",
    "doesn't exist",
    "unknown model",
    "no such model",
    "not a valid model",
    "invalid model",
    "not served",
)


class NotOpenAIError(ValueError):
    """The server answered, but not with an OpenAI-style body."""


@dataclass(frozen=True)
class ParsedCompletion:
    """One reply: ``text`` is the content (None when the server sent ``"content": null``); ``reasoning`` the text
    of a separate reasoning field named ``reasoning_field``; ``reasoning_tokens`` as ``usage`` reported them."""

    text: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning: str = ""
    reasoning_field: str = ""
    reasoning_tokens: int | None = None


def api_root(base_url: str) -> str:
    """Accept ``https://host``, ``https://host/`` and ``https://host/v1`` alike; return ``.../v1``.

    A pasted full route (``.../v1/chat/completions``) is cut back to its root, a common form-filling slip.
    """
    root = base_url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if root.endswith("/v1" + suffix):
            root = root[: -len(suffix)]
            break
    return root if root.endswith("/v1") else root + "/v1"


def route(api_mode: ApiMode) -> str:
    return "/chat/completions" if api_mode == "chat" else "/completions"


def build_body(
    request: GenerationRequest,
    *,
    model: str,
    api_mode: ApiMode,
    stream: bool,
    stream_usage: bool = True,
    max_tokens_field: str = "max_tokens",
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Greedy decoding (temperature 0) so repeated runs of a sample are comparable."""
    body: dict[str, Any] = {"model": model, "temperature": 0, max_tokens_field: request.max_new_tokens}
    if api_mode == "chat":
        body["messages"] = (
            list(request.messages)
            if request.messages is not None
            else [{"role": "user", "content": request.prompt}]
        )
    else:
        if request.prompt is None:
            raise ValueError("completions mode needs a plain prompt, not chat messages")
        body["prompt"] = request.prompt
    if request.stop:
        body["stop"] = list(request.stop)
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    if extra_body:
        body.update(
            {k: v for k, v in extra_body.items() if k not in ("model", "messages", "prompt", "stream")}
        )
    return body


#: Characters of a long string escaped at a time, and the size a streamed body's chunks grow to before they are sent.
BODY_CHUNK_CHARS = 1 << 16
_escape = json.encoder.encode_basestring  # type: ignore[attr-defined]  (the stdlib's own, C-accelerated)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json_pieces(value: Any) -> Iterator[str]:
    """``value`` as compact JSON text, in pieces: strings longer than ``BODY_CHUNK_CHARS`` are escaped a slice at a
    time (JSON escapes each character on its own, so slices join into the escape of the whole)."""
    if isinstance(value, str):
        if len(value) <= BODY_CHUNK_CHARS:
            yield _escape(value)
            return
        yield '"'
        for start in range(0, len(value), BODY_CHUNK_CHARS):
            yield _escape(value[start : start + BODY_CHUNK_CHARS])[1:-1]
        yield '"'
    elif isinstance(value, Mapping):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            yield ("," if i else "") + _escape(key) + ":"
            yield from _json_pieces(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _json_pieces(item)
        yield "]"
    else:
        yield _dumps(value)


class JsonBody:
    """A JSON request body sent in chunks of about ``BODY_CHUNK_CHARS`` UTF-8 bytes, never whole.

    A 1M-token prompt makes a body of several MB; encoding it at once (as ``httpx``'s ``json=`` does: a ``str``,
    then its ``bytes``) holds two more copies of the prompt for the request's lifetime. Iterating encodes one chunk
    at a time; the byte length is counted by one such pass up front, so the request carries ``Content-Length``
    (no chunked transfer encoding, which some servers refuse). Re-iterable: a retry or a redirect sends it again.
    The text equals ``json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``; a value JSON
    cannot hold raises ``TypeError`` or ``ValueError`` when the body is built.
    """

    def __init__(self, body: Mapping[str, Any]) -> None:
        self._body = body
        self.length_bytes = sum(len(chunk) for chunk in self)

    def __iter__(self) -> Iterator[bytes]:
        buffer: list[str] = []
        size = 0
        for piece in _json_pieces(self._body):
            buffer.append(piece)
            size += len(piece)
            if size >= BODY_CHUNK_CHARS:
                yield "".join(buffer).encode("utf-8")
                buffer, size = [], 0
        if buffer:
            yield "".join(buffer).encode("utf-8")

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Content-Length": str(self.length_bytes)}


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_usage(payload: Mapping[str, Any]) -> tuple[int | None, int | None]:
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        return None, None
    return _int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens"))


def parse_reasoning_tokens(payload: Mapping[str, Any]) -> int | None:
    """``usage.completion_tokens_details.reasoning_tokens`` (OpenAI, vLLM), or None when not reported."""
    usage = payload.get("usage")
    details = usage.get("completion_tokens_details") if isinstance(usage, Mapping) else None
    return _int_or_none(details.get("reasoning_tokens")) if isinstance(details, Mapping) else None


def _content_text(content: Any) -> str:
    """Message content is a string, null, or (some servers) a list of typed parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    raise NotOpenAIError("message content is neither text nor a list of parts")


def _first_choice(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise NotOpenAIError("the body is not a JSON object")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise NotOpenAIError("the body has no 'choices' list")
    return choices[0]


def parse_completion(payload: Any, api_mode: ApiMode) -> ParsedCompletion:
    choice = _first_choice(payload)
    if api_mode == "chat":
        message = choice.get("message")
        if not isinstance(message, Mapping):
            raise NotOpenAIError("choices[0] has no 'message' (is the API mode 'completions'?)")
        content = message.get("content")
        text: str | None = None if content is None else _content_text(content)
        reasoning, reasoning_field = reasoning_from_fields(message)
    else:
        text = choice.get("text")
        if not isinstance(text, str):
            raise NotOpenAIError("choices[0] has no 'text' (is the API mode 'chat'?)")
        reasoning, reasoning_field = reasoning_from_fields(choice)
    finish = choice.get("finish_reason")
    prompt_tokens, completion_tokens = parse_usage(payload)
    return ParsedCompletion(
        text, finish if isinstance(finish, str) else None, prompt_tokens, completion_tokens,
        reasoning=reasoning, reasoning_field=reasoning_field, reasoning_tokens=parse_reasoning_tokens(payload),
    )


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Yield each server-sent event's data (multi-line data joined by newlines); ignores comments and ids."""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


class StreamAccumulator:
    """Folds streamed chunks into one completion; ``feed`` returns the text (content or reasoning) that chunk
    added, so the first token of either kind marks the time to first token."""

    def __init__(self, api_mode: ApiMode) -> None:
        self.api_mode = api_mode
        self.parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.reasoning_field = ""
        self.reasoning_tokens: int | None = None
        self.saw_content = False
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.chunks = 0

    def feed(self, chunk: Any) -> str:
        if not isinstance(chunk, Mapping):
            raise NotOpenAIError("a streamed event is not a JSON object")
        prompt_tokens, completion_tokens = parse_usage(chunk)
        if prompt_tokens is not None:
            self.prompt_tokens = prompt_tokens
        if completion_tokens is not None:
            self.completion_tokens = completion_tokens
        reasoning_tokens = parse_reasoning_tokens(chunk)
        if reasoning_tokens is not None:
            self.reasoning_tokens = reasoning_tokens
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            if "usage" in chunk:
                return ""
            raise NotOpenAIError("a streamed event has no 'choices'")
        if not choices:
            return ""
        choice = choices[0]
        if not isinstance(choice, Mapping):
            raise NotOpenAIError("a streamed choice is not an object")
        if self.api_mode == "chat":
            delta = choice.get("delta")
            if not isinstance(delta, Mapping):
                raise NotOpenAIError("a streamed chat choice has no 'delta'")
            self.saw_content = self.saw_content or delta.get("content") is not None
            text = _content_text(delta.get("content"))
            reasoning, field_name = reasoning_from_fields(delta)
        else:
            value = choice.get("text")
            if not isinstance(value, str):
                raise NotOpenAIError("a streamed completion choice has no 'text'")
            text, self.saw_content = value, True
            reasoning, field_name = reasoning_from_fields(choice)
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]
        self.chunks += 1
        if text:
            self.parts.append(text)
        if reasoning:
            self.reasoning_parts.append(reasoning)
            self.reasoning_field = self.reasoning_field or field_name
        return text + reasoning

    def result(self) -> ParsedCompletion:
        return ParsedCompletion(
            "".join(self.parts) if self.saw_content or self.parts else None, self.finish_reason,
            self.prompt_tokens, self.completion_tokens, reasoning="".join(self.reasoning_parts),
            reasoning_field=self.reasoning_field, reasoning_tokens=self.reasoning_tokens,
        )


def error_details(payload: Any) -> tuple[str | None, str | None]:
    """(message, code) from the error bodies servers use: OpenAI ``{"error": ...}``, vLLM, FastAPI."""
    if not isinstance(payload, Mapping):
        return None, None
    err = payload.get("error")
    if isinstance(err, Mapping):
        message, code = err.get("message"), err.get("code") or err.get("type")
    elif isinstance(err, str):
        message, code = err, payload.get("code") or payload.get("type")
    else:
        message = payload.get("message") or payload.get("detail")
        code = payload.get("code") or payload.get("type")
    return (
        str(message) if message is not None else None,
        str(code) if code is not None else None,
    )


def mentions_unknown_model(message: str | None, code: str | None, model: str) -> bool:
    """Heuristic over the error texts of OpenAI, vLLM, TGI and common proxies for 'no such model'."""
    if code and code.lower() in ("model_not_found", "modelnotfound"):
        return True
    text = (message or "").lower()
    if "model" not in text:
        return False
    return any(p in text for p in _UNKNOWN_MODEL_PHRASES)


def model_entries(payload: Any) -> list[Mapping[str, Any]] | None:
    """Entries of a /v1/models listing, or None when the body is not one."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("data"), list):
        return None
    return [e for e in payload["data"] if isinstance(e, Mapping) and isinstance(e.get("id"), str)]


def context_length(entry: Mapping[str, Any]) -> int | None:
    """The context window a /v1/models entry reports, under any of the names servers use."""
    for name in CONTEXT_FIELDS:
        value = entry.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    for nested in ("meta", "top_provider"):
        sub = entry.get(nested)
        if isinstance(sub, Mapping):
            for name in (*CONTEXT_FIELDS, "n_ctx_train", "n_ctx"):
                value = sub.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return None
