"""Separating a reasoning model's final answer from its reasoning, before anything is scored or stored.

Served reasoning models put their thinking in one of a few places: tag pairs in the text (``<think>…</think>``
in DeepSeek-R1 and Qwen3, ``<thinking>``, ``<reasoning>``, Mistral Magistral's ``[THINK]…[/THINK]``, Seed-OSS's
``<seed:think>``, Kimi's ``◁think▷``), an opening tag written by the chat template so the output starts
mid-thought and only closes it, a block cut off by the token limit that never closes, OpenAI's harmony channels
(gpt-oss: ``analysis`` / ``commentary`` / ``final``, with their ``<|channel|>`` marker tokens or, when a server
skips special tokens, as the bare words ``analysis…assistantfinal…``), or separate response fields
(``reasoning_content`` in DeepSeek's API and vLLM, ``reasoning`` in vLLM ≥ 0.10, OpenRouter and Ollama).

RULER's match is recall-only (``string_match_part``/``string_match_all``): any value mentioned while thinking
would count as answered. So only the final answer is scored, and a reply without one is a named outcome
(``AnswerOutcome``), never an empty string scored 0 in silence. Adding a format is one entry in ``FORMATS``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class AnswerOutcome(StrEnum):
    """What a reply amounted to. Values are stored per sample and counted per cell."""

    ANSWERED = "answered"
    CUT_OFF_WHILE_REASONING = "cut_off_while_reasoning"  # the token limit ended the reply inside its reasoning
    EMPTY = "empty"  # the reply ended (or its reasoning closed) with nothing after it

    @property
    def has_answer(self) -> bool:
        return self is AnswerOutcome.ANSWERED

    @property
    def label(self) -> str:
        return OUTCOME_LABELS[self]


OUTCOME_LABELS = {
    AnswerOutcome.ANSWERED: "answered",
    AnswerOutcome.CUT_OFF_WHILE_REASONING: "no final answer: stopped while reasoning",
    AnswerOutcome.EMPTY: "no final answer: empty reply",
}

#: Response fields in which servers return the reasoning apart from ``content`` (message or stream delta).
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")


@dataclass(frozen=True)
class Split:
    """One format's reading of a text: the reasoning it found and what is left as the answer.

    ``closed`` is False when the reasoning never ended (an unclosed block: the answer part is what came
    before it, usually nothing).
    """

    reasoning: str
    answer: str
    closed: bool


class ReasoningFormat(Protocol):
    name: str

    def split(self, text: str) -> Split | None:
        """The reasoning and the answer, or None when this format does not occur in ``text``."""


@dataclass(frozen=True)
class TagPair:
    """Reasoning between an opening and a closing marker (matched case-insensitively).

    Handles closed blocks anywhere in the text, a lone closing marker (the chat template wrote the opening one
    into the prompt, so everything before it is reasoning) and a lone opening marker (cut off mid-thought).
    """

    name: str
    open: str
    close: str

    def split(self, text: str) -> Split | None:
        lower, open_, close = text.lower(), self.open.lower(), self.close.lower()
        if open_ not in lower and close not in lower:
            return None
        reasoning: list[str] = []
        answer: list[str] = []
        at = 0
        while True:
            close_at = lower.find(close, at)
            open_at = lower.find(open_, at)
            if close_at < 0:
                if open_at < 0:
                    answer.append(text[at:])
                    return Split("".join(reasoning), "".join(answer), closed=True)
                # An opening marker that is never closed: the rest was cut off while reasoning.
                answer.append(text[at:open_at])
                reasoning.append(text[open_at + len(open_):])
                return Split("".join(reasoning), "".join(answer), closed=False)
            if 0 <= open_at < close_at:
                answer.append(text[at:open_at])
                reasoning.append(text[open_at + len(open_):close_at])
            else:  # a closing marker with no opening one before it: the template opened the block
                reasoning.append(text[at:close_at])
            at = close_at + len(close)


@dataclass(frozen=True)
class Channels:
    """OpenAI harmony's channels (gpt-oss): reasoning in ``analysis``/``commentary``, the answer in ``final``.

    ``final`` is the (lower-case) marker that starts the final channel; ``start`` recognises the start of a
    reasoning channel; ``ends`` end a message. Source: openai/harmony's format description
    (``<|start|>assistant<|channel|>final<|message|>…<|return|>``); servers that skip special tokens leave the
    bare channel names (``analysisWe need…assistantfinal42``).
    """

    name: str
    final: str
    start: re.Pattern[str]
    ends: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()

    def split(self, text: str) -> Split | None:
        final_at = text.lower().rfind(self.final)
        if final_at < 0:
            return Split(self._clean(text), "", closed=False) if self.start.search(text) else None
        answer = text[final_at + len(self.final):]
        for end in self.ends:
            cut = answer.lower().find(end)
            if cut >= 0:
                answer = answer[:cut]
        return Split(self._clean(text[:final_at]), answer, closed=True)

    def _clean(self, text: str) -> str:
        text = self.start.sub(" ", text, count=1)
        for marker in (*self.markers, *self.ends):
            text = re.sub(re.escape(marker), " ", text, flags=re.IGNORECASE)
        return text.strip()


#: Every reasoning format we separate, tried in this order. A new format is one entry here.
FORMATS: tuple[ReasoningFormat, ...] = (
    Channels("harmony", final="<|channel|>final<|message|>",
             start=re.compile(r"<\|channel\|>\s*(analysis|commentary)", re.IGNORECASE),
             ends=("<|return|>", "<|end|>", "<|call|>"), markers=("<|start|>assistant", "<|start|>", "<|message|>")),
    # Without marker tokens the channel name runs straight into the text ("analysisWe need…"); a plain answer
    # such as "Analysis: 42" is not taken for it.
    Channels("harmony_plain", final="assistantfinal", start=re.compile(r"^\s*(analysis|commentary)(?=[A-Z])")),
    TagPair("think", "<think>", "</think>"),
    TagPair("thinking", "<thinking>", "</thinking>"),
    TagPair("reasoning", "<reasoning>", "</reasoning>"),
    TagPair("think_brackets", "[THINK]", "[/THINK]"),
    TagPair("seed_think", "<seed:think>", "</seed:think>"),
    TagPair("kimi_think", "◁think▷", "◁/think▷"),
)


@dataclass(frozen=True)
class ExtractedAnswer:
    """A reply split into its final answer and its reasoning.

    ``answer`` is the text to score ("" when ``outcome`` has no answer); ``reasoning_chars`` the length of the
    reasoning in characters (0 when there was none); ``found_by`` how the answer was found: ``plain`` (no
    reasoning), a format's name (``think``, ``harmony``…), a reasoning field (``field:reasoning_content``) or
    ``field:reasoning_content+recovered`` when the server put the whole reply in its reasoning field (a reasoning
    parser that misfired) and the answer was read from there.
    """

    answer: str
    outcome: AnswerOutcome
    reasoning_chars: int
    found_by: str
    reasoning: str = ""

    @property
    def reasoned(self) -> bool:
        return self.reasoning_chars > 0 or self.found_by != "plain"


def _split_text(text: str) -> tuple[str, str, bool, list[str]]:
    """(answer, reasoning, closed, names of the formats found), applying every format in turn."""
    reasoning: list[str] = []
    names: list[str] = []
    closed = True
    answer = text
    for fmt in FORMATS:
        found = fmt.split(answer)
        if found is None:
            continue
        names.append(fmt.name)
        reasoning.append(found.reasoning)
        answer = found.answer
        closed = closed and found.closed
    return answer, "".join(reasoning), closed, names


def extract_answer(content: str | None, *, reasoning_field: str = "", reasoning_field_name: str = "",
                   finish_reason: str | None = None, hidden_reasoning_tokens: int | None = None) -> ExtractedAnswer:
    """The final answer of one reply.

    ``content`` is the reply's text (``message.content`` or the concatenated stream deltas; None for a JSON
    null); ``reasoning_field`` the text of a separate reasoning field, named ``reasoning_field_name``;
    ``finish_reason`` the server's (``"length"`` means the token limit ended the reply);
    ``hidden_reasoning_tokens`` the reasoning tokens a server reported in ``usage`` without sending their text
    (OpenAI's reasoning models), which makes an empty reply cut off on ``length`` one cut off while reasoning.

    Rules: reasoning in the text or a field is never scored. A reply whose reasoning never closed, or that has
    only reasoning and stopped on ``length``, was cut off while reasoning. A reply with only a reasoning field
    that stopped on its own is read as a misfired reasoning parser: the field's own final answer (after any
    markers it contains) is the answer, and ``found_by`` says so.
    """
    text = content or ""
    answer, reasoning, closed, names = _split_text(text)
    field_text = reasoning_field or ""
    found_by = "+".join(names) if names else "plain"
    if field_text:
        found_by = f"field:{reasoning_field_name or 'reasoning'}" + ("" if not names else "+" + found_by)
    total_reasoning = field_text + reasoning
    if not closed:
        return ExtractedAnswer("", AnswerOutcome.CUT_OFF_WHILE_REASONING, len(total_reasoning), found_by,
                               total_reasoning)
    if answer.strip():
        return ExtractedAnswer(answer.strip(), AnswerOutcome.ANSWERED, len(total_reasoning), found_by,
                               total_reasoning)
    if field_text and not text.strip():
        if finish_reason == "length":
            return ExtractedAnswer("", AnswerOutcome.CUT_OFF_WHILE_REASONING, len(field_text), found_by, field_text)
        inner_answer, inner_reasoning, inner_closed, _ = _split_text(field_text)
        if inner_closed and inner_answer.strip():
            return ExtractedAnswer(inner_answer.strip(), AnswerOutcome.ANSWERED, len(inner_reasoning),
                                   found_by + "+recovered", inner_reasoning)
    if (total_reasoning or hidden_reasoning_tokens) and finish_reason == "length":
        return ExtractedAnswer("", AnswerOutcome.CUT_OFF_WHILE_REASONING, len(total_reasoning),
                               found_by if total_reasoning else "usage:reasoning_tokens", total_reasoning)
    return ExtractedAnswer("", AnswerOutcome.EMPTY, len(total_reasoning), found_by, total_reasoning)


def reasoning_from_fields(message: Mapping[str, Any]) -> tuple[str, str]:
    """(text, field name) of the first non-empty reasoning field of a message or stream delta; ("", "") if none."""
    for name in REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value, name
    return "", ""
