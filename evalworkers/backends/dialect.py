"""An endpoint's dialect of the OpenAI API, as the probe learned it, and how to switch when a server refuses.

Servers differ in what they accept: OpenAI's reasoning models refuse ``max_tokens`` ("Use
'max_completion_tokens' instead"), older vLLM/TGI builds refuse ``max_completion_tokens`` or
``stream_options`` (FastAPI's 422 naming ``stream_options.include_usage``), some proxies never stream. The
probe starts from our defaults, switches once per refused parameter the server names, and the submission
keeps the result, so every later request speaks the server's dialect.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOKEN_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")
_STREAM_ALONE = re.compile(r"(?<![\w.])stream(?![\w.])")


@dataclass(frozen=True)
class Dialect:
    """What an endpoint accepts and reports.

    ``max_tokens_field``: the token-limit field it accepts (``max_tokens`` or ``max_completion_tokens``);
    ``stream``: whether requests stream (False when the server refused streaming, answered JSON to a streamed
    request, or reported usage only without streaming); ``stream_usage``: whether ``stream_options.include_usage``
    is sent; ``reports_usage``: whether the probe's answer carried ``usage.prompt_tokens`` (None: not probed);
    ``streams``: whether the server answered a streamed request with server-sent events (None: not asked);
    ``reasoning``: how the probe's first answer carried reasoning ("" when it had none), e.g. ``think`` or
    ``field:reasoning_content``; ``switched``: the parameters the probe switched, each with the server's reason;
    ``tokenize``: the server's tokenize route (``tokenize.DIALECTS``: vllm, llama.cpp, tgi; "" when none);
    ``template_overhead_tokens``: tokens the server adds around a prompt's text (chat template, BOS), measured
    from the probe's usage (None when the server reports no usage).
    """

    max_tokens_field: str = "max_tokens"
    stream: bool = True
    stream_usage: bool = True
    reports_usage: bool | None = None
    streams: bool | None = None
    reasoning: str = ""
    switched: tuple[str, ...] = ()
    tokenize: str = ""
    template_overhead_tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["switched"] = list(self.switched)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Dialect:
        """A stored dialect; unknown keys are ignored and a token-limit field we do not know is refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        if "switched" in values:
            values["switched"] = tuple(values["switched"])
        dialect = cls(**values)
        if dialect.max_tokens_field not in TOKEN_LIMIT_FIELDS:
            raise ValueError(f"unknown token-limit field {dialect.max_tokens_field!r}")
        return dialect

    def config_fields(self) -> dict[str, Any]:
        """The ``EndpointConfig`` fields this dialect sets (for ``dataclasses.replace``)."""
        return {"max_tokens_field": self.max_tokens_field, "stream": self.stream, "stream_usage": self.stream_usage}

    def notes(self) -> list[str]:
        """Plain sentences for the provenance of a result."""
        notes = [f"token limit sent as {self.max_tokens_field}",
                 "streamed" if self.stream else "not streamed (no time to first token)"]
        if self.stream and not self.stream_usage:
            notes.append("stream_options not accepted")
        if self.reports_usage is False:
            notes.append("the server reports no token usage: prompt lengths are unverified")
        if self.tokenize:
            notes.append(f"prompts sized with the server's tokenizer ({self.tokenize} tokenize route)")
        if self.reasoning:
            notes.append(f"reasoning detected ({self.reasoning})")
        notes.extend(self.switched)
        return notes


def _refused_text(payload: Any, message: str | None) -> str:
    """Everything the error body says, lower-cased: message, param, FastAPI's ``detail[].loc``."""
    parts = [message or ""]
    if isinstance(payload, Mapping):
        err = payload.get("error")
        if isinstance(err, Mapping) and err.get("param"):
            parts.append(str(err["param"]))
        detail = payload.get("detail")
        if isinstance(detail, list):
            parts.extend(json.dumps(d) for d in detail)
    return " ".join(parts).lower()


def adapt(dialect: Dialect, *, status: int | None, message: str | None, payload: Any) -> Dialect | None:
    """The dialect to try after a refusal that names a parameter we can change; None when there is none.

    Only 400 and 422 answers count, and each switch is made once (a server refusing both token-limit fields
    does not make us loop).
    """
    if status not in (400, 422):
        return None
    text = _refused_text(payload, message)
    reason = " ".join((message or "").split())[:160]
    if "stream_options" in text or "include_usage" in text:
        if dialect.stream and dialect.stream_usage:
            return dataclasses.replace(dialect, stream_usage=False,
                                       switched=(*dialect.switched, f"stream_options dropped: {reason}"))
        return None
    other = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}[dialect.max_tokens_field]
    current = dialect.max_tokens_field
    names_current = re.search(rf"(?<![\w]){current}(?![\w])", text) is not None
    if names_current and not any(" sent instead of " in s for s in dialect.switched) and (
            other in text or "unsupported" in text or "not supported" in text or "extra" in text):
        return dataclasses.replace(dialect, max_tokens_field=other,
                                   switched=(*dialect.switched, f"{other} sent instead of {current}: {reason}"))
    if _STREAM_ALONE.search(text) and dialect.stream and ("support" in text or "extra" in text):
        return dataclasses.replace(dialect, stream=False,
                                   switched=(*dialect.switched, f"streaming turned off: {reason}"))
    return None
