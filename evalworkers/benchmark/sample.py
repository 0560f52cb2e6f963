"""A generated sample and how it is rendered for chat and completion models."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from .rng import canonical_json


@dataclass(frozen=True)
class RenderOptions:
    """Version- and backend-level rendering choices.

    ``reasoning``: no answer prefix (a thinking model should not be pushed into its answer) and
    ``reasoning_extra_tokens`` more new tokens. ``answer_prefill``: send the answer prefix as an assistant
    prefill in chat form (not every endpoint supports continuing an assistant message). ``reserve_tokens``:
    tokens the sized text must leave free, e.g. a chat template's markup or a BOS token.
    """

    reasoning: bool = False
    reasoning_extra_tokens: int = 1024
    answer_prefill: bool = True
    system_prompt: str | None = None
    reserve_tokens: int = 0

    @classmethod
    def from_version_params(cls, params: dict[str, Any] | None, **overrides: Any) -> RenderOptions:
        """Options from a BenchmarkVersion's params (unknown keys such as ``query_aware`` are ignored)."""
        params = params or {}
        known = {k: params[k] for k in ("reasoning", "reasoning_extra_tokens", "answer_prefill", "system_prompt")
                 if k in params}
        return cls(**{**known, **overrides})


@dataclass(frozen=True)
class Sample:
    task_key: str
    task_type: str
    index: int
    length: int
    instruction: str
    context: str
    question: str
    answer_prefix: str
    separators: tuple[str, str]
    answers: list[str]
    metric: str
    max_new_tokens: int
    prompt_tokens: int
    system_prompt: str | None = None
    answer_prefill: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def user_text(self) -> str:
        return self.instruction + self.separators[0] + self.context + self.separators[1] + self.question

    def as_completion_prompt(self) -> str:
        """One prompt for completion endpoints: RULER's layout, the answer prefix after a space."""
        head = f"{self.system_prompt}\n\n" if self.system_prompt else ""
        tail = f" {self.answer_prefix}" if self.answer_prefix else ""
        return head + self.user_text() + tail

    def as_messages(self) -> list[dict[str, str]]:
        """OpenAI chat messages; the answer prefix becomes an assistant prefill only when enabled."""
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": self.user_text()})
        if self.answer_prefill and self.answer_prefix:
            messages.append({"role": "assistant", "content": self.answer_prefix})
        return messages

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["separators"] = list(self.separators)
        return data

    def canonical_json(self) -> str:
        return canonical_json(self.to_dict())

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
