"""Counting tokens with the server's own tokenizer, through its tokenize route, when it has one.

vLLM (``POST /tokenize`` with ``prompt``, answering ``count`` and ``tokens``), llama.cpp's server (``POST
/tokenize`` with ``content``, answering ``tokens``) and TGI (``POST /tokenize`` with ``inputs``, answering a list
of tokens) serve one beside their OpenAI routes, at the server's root. The probe finds which one answers
(``detect``); the runner then sizes prompts exactly with ``RemoteTokenizer.count``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evalworkers.backends.endpoint import EndpointBackend
from evalworkers.backends.retry import Deadline

TOKENIZE_PATH = "/tokenize"


class TokenizeError(RuntimeError):
    """The tokenize route did not answer with a count."""


@dataclass(frozen=True)
class TokenizeDialect:
    name: str
    body: Callable[[str, str], dict[str, Any]]  # (model, text) -> request body


DIALECTS: tuple[TokenizeDialect, ...] = (
    TokenizeDialect("vllm", lambda model, text: {"model": model, "prompt": text, "add_special_tokens": False}),
    TokenizeDialect("llama.cpp", lambda model, text: {"content": text, "add_special": False}),
    TokenizeDialect("tgi", lambda model, text: {"inputs": text, "add_special_tokens": False}),
)


def parse_count(payload: Any) -> int | None:
    """The number of tokens in a tokenize answer of any of the known shapes, else None."""
    if isinstance(payload, dict):
        count = payload.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
        tokens = payload.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None
    return len(payload) if isinstance(payload, list) else None


class RemoteTokenizer:
    """``count(text)``: the server's token count of ``text`` (no special tokens), or TokenizeError."""

    def __init__(self, backend: EndpointBackend, dialect: str, *, timeout_s: float = 60.0) -> None:
        self.backend = backend
        self.dialect = next(d for d in DIALECTS if d.name == dialect)
        self.timeout_s = timeout_s

    def count(self, text: str) -> int:
        attempt = self.backend.send_once(
            TOKENIZE_PATH, self.dialect.body(self.backend.config.model, text), deadline=Deadline(self.timeout_s),
            expect_completion=False, from_server_root=True)
        count = parse_count(attempt.payload) if attempt.ok else None
        if count is None:
            raise TokenizeError(f"the tokenize route did not count the prompt ({attempt.reason})")
        return count


def detect(backend: EndpointBackend, text: str, *, timeout_s: float) -> tuple[str, int] | None:
    """(dialect name, count of ``text``) of the first tokenize route that answers, or None."""
    for dialect in DIALECTS:
        try:
            return dialect.name, RemoteTokenizer(backend, dialect.name, timeout_s=timeout_s).count(text)
        except TokenizeError:
            continue
    return None
