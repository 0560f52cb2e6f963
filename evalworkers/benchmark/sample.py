"""A generated sample and how it is rendered for chat and completion models."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from .plan import Turn
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
    followups: tuple[Turn, ...] = ()

    @property
    def turns(self) -> int:
        """Questions asked about this context: 1, or more in the shared-context mode."""
        return 1 + len(self.followups)

    def at_turn(self, turn: int) -> Sample:
        """The sample as turn ``turn`` (1-based) asks it: that turn's question, answer prefix, answers and metric,
        the context unchanged; its metadata has the turn's facts over the sample's. Raises ValueError for a turn
        the sample does not have."""
        if not 1 <= turn <= self.turns:
            raise ValueError(f"turn {turn} is not one of this sample's turns 1-{self.turns}")
        if turn == 1:
            return dataclasses.replace(self, followups=())
        later = self.followups[turn - 2]
        return dataclasses.replace(
            self, question=later.question, answer_prefix=later.answer_prefix, answers=list(later.answers),
            metric=later.metric or self.metric, metadata={**self.metadata, **later.metadata, "turn": turn},
            followups=())

    def expected_reply(self, turn: int) -> str:
        """What the assistant says for ``turn`` in the history of later turns: the answer prefix and the expected
        answers. SCBench's multi-turn mode puts the golden answers of earlier turns in the history, so every turn
        reads the same conversation whatever the model answered before."""
        asked = self.at_turn(turn)
        answers = ", ".join(asked.answers)
        return f"{asked.answer_prefix} {answers}." if asked.answer_prefix else f"{answers}."

    def conversation_messages(self, turn: int) -> list[dict[str, str]]:
        """OpenAI chat messages for ``turn``: the first turn's messages, then each earlier turn's expected reply and
        the next question as a user message; the answer prefix of ``turn`` as an assistant prefill when enabled."""
        first = self.at_turn(1)
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": first.user_text()})
        for earlier in range(1, turn):
            messages.append({"role": "assistant", "content": self.expected_reply(earlier)})
            messages.append({"role": "user", "content": self.at_turn(earlier + 1).question})
        asked = self.at_turn(turn)
        if self.answer_prefill and asked.answer_prefix:
            messages.append({"role": "assistant", "content": asked.answer_prefix})
        return messages

    def conversation_prompt(self, turn: int) -> str:
        """One completion prompt for ``turn``: the first turn's prompt, then each earlier turn's expected answers
        and the next question with its answer prefix, so that every turn's prompt extends the one before."""
        first = self.at_turn(1)
        text = first.as_completion_prompt()
        for earlier in range(1, turn):
            asked, following = self.at_turn(earlier), self.at_turn(earlier + 1)
            text += (" " if asked.answer_prefix else "\n") + ", ".join(asked.answers) + ".\n\n" + following.question
            if following.answer_prefix:
                text += f" {following.answer_prefix}"
        return text

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
        if not self.followups:  # one question: the same dict (and hash) as before the shared-context mode
            del data["followups"]
        return data

    def canonical_json(self) -> str:
        return canonical_json(self.to_dict())

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
