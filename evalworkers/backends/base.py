"""Plain request/result types shared by every model backend (endpoint, local Hugging Face)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from evalworkers.efficiency import Efficiency


@dataclass(frozen=True)
class GenerationRequest:
    """One sample to generate.

    Give ``messages`` for chat-style backends or ``prompt`` for plain completions; a chat backend wraps a bare
    ``prompt`` into a single user message so the runner can build either.
    """

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    max_new_tokens: int = 128
    stop: list[str] | None = None
    # Where the part a KV press may compress ends: a character offset into the last user message (chat) or the
    # prompt (completions); the question after it stays uncompressed. Endpoints ignore it.
    compress_until: int | None = None

    def __post_init__(self) -> None:
        if self.messages is None and self.prompt is None:
            raise ValueError("GenerationRequest needs messages or a prompt")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")

    def prompt_chars(self) -> int:
        """Characters of prompt text, used to calibrate chars-per-token against the server's usage."""
        if self.messages is not None:
            return sum(len(str(m.get("content") or "")) for m in self.messages)
        return len(self.prompt or "")


@dataclass(frozen=True)
class GenerationResult:
    """What came back for one sample.

    A sample that failed for good has ``error`` set (a short reason) and empty ``text``; the runner stores it
    as an error rather than scoring an empty prediction. ``latency_s`` is the successful attempt's round trip
    (for errors, the whole time spent, retries included); ``ttft_s`` and ``decode_tokens_per_s`` are only
    known when streaming. ``text`` is the reply as sent (reasoning tags included: the runner extracts the final
    answer); ``content_null`` is True when the server sent ``"content": null``; ``reasoning`` is a separate
    reasoning field's text and ``reasoning_field`` its name; ``reasoning_tokens`` as the server's usage reported.
    A local backend adds its KV figures (``efficiency``), or ``out_of_memory`` with the memory ``reached_bytes``.
    """

    text: str = ""
    content_null: bool = False
    reasoning: str = ""
    reasoning_field: str = ""
    reasoning_tokens: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    decode_tokens_per_s: float | None = None
    error: str | None = None
    attempts: int = 0
    finish_reason: str | None = None
    efficiency: Efficiency | None = field(default=None, compare=False)
    out_of_memory: bool = False
    reached_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, reason: str, *, attempts: int = 0, latency_s: float = 0.0) -> GenerationResult:
        return cls(error=reason, attempts=attempts, latency_s=latency_s)


@runtime_checkable
class Backend(Protocol):
    """The runner talks to every model through this; generate() must return errors as results, not raise."""

    def generate(self, request: GenerationRequest) -> GenerationResult: ...

    def close(self) -> None: ...
