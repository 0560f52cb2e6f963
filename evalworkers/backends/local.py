"""Local Hugging Face models under a KV plan: load once per worker, render the chat template, generate, measure.

A worker keeps the last model it loaded (cells of one submission reuse it) and frees it when another model is
asked for. Loading never reaches a hub when ``offline`` is set: a repo id must already be in the local cache.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalworkers.backends import reference
from evalworkers.backends.base import GenerationRequest, GenerationResult
from evalworkers.backends.conversation import Conversation, TurnCallback
from evalworkers.kv.registry import KVPlan, MethodError
from evalworkers.kv.registry import plan as kv_plan

_SPLIT = "\u2063\u2063KV-QUESTION-STARTS\u2063\u2063"  # invisible separators: never in a generated prompt


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message says what to fix."""


@dataclass(frozen=True)
class LocalModelConfig:
    source: str  # "reference", a local folder, a .gguf file, or a Hugging Face repo id
    revision: str | None = None
    models_dir: Path = Path("var/models")  # where the reference model lives once prepared
    device: str = "auto"  # "auto" takes CUDA when there is one
    dtype: str = "auto"  # "auto" keeps the checkpoint's dtype (bf16 for the reference model)
    offline: bool = True
    files_dir: Path | None = None  # files some methods need (DuoAttention patterns, Q-Filters)
    memory_limit_bytes: int | None = None  # cap on KV memory; past it a sample is out of memory
    query_aware: bool = False

    def key(self) -> tuple[Any, ...]:
        return (self.source, self.revision, str(self.models_dir), self.device, self.dtype)


@dataclass
class LoadedModel:
    key: tuple[Any, ...]
    model: Any
    tokenizer: Any
    name: str
    eos_ids: list[int]
    context_window: int | None
    load_s: float

    @property
    def placement(self) -> str:
        """Where and in what precision the weights run, e.g. "bfloat16 on cpu"."""
        return f"{self.dtype_name} on {self.model.device}"

    @property
    def dtype_name(self) -> str:
        """The weights' dtype without torch's prefix, e.g. "bfloat16"."""
        return str(self.model.dtype).removeprefix("torch.")

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {"model": self.name, "architecture": type(self.model).__name__, "dtype": str(self.model.dtype),
                "device": str(self.model.device), "layers": cfg.num_hidden_layers,
                "kv_heads": getattr(cfg, "num_key_value_heads", cfg.num_attention_heads),
                "context_window": self.context_window, "load_s": round(self.load_s, 2)}


_lock = threading.Lock()
_loaded: LoadedModel | None = None


def resolve_source(config: LocalModelConfig) -> tuple[str, dict[str, Any]]:
    """(path or repo id, extra from_pretrained arguments) for a source; a GGUF file loads from its folder."""
    source = config.source.strip()
    if source == reference.NAME:
        return str(reference.require(config.models_dir)), {}
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        return str(path.parent), {"gguf_file": path.name}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} has no config.json: not a Hugging Face model folder")
        return str(path), {}
    if source.startswith(("/", ".", "~")):
        raise ModelLoadError(f"model folder {path} does not exist")
    return source, {"revision": config.revision or None, "local_files_only": config.offline}


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load(config: LocalModelConfig) -> LoadedModel:
    """The loaded model for `config`, loading it (and freeing the previous one) only when it changed."""
    global _loaded
    with _lock:
        if _loaded is not None and _loaded.key == config.key():
            return _loaded
        release_locked()
        _loaded = _load(config)
        return _loaded


def _load(config: LocalModelConfig) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, extra = resolve_source(config)
    dtype: Any = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **extra)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, attn_implementation="sdpa", **extra)
    except OSError as exc:
        hint = " (this worker is offline: put the model in the local Hugging Face cache first)" \
            if extra.get("local_files_only") else ""
        raise ModelLoadError(f"cannot load {config.source!r}: {str(exc).splitlines()[0][:300]}{hint}") from None
    except ValueError as exc:
        raise ModelLoadError(f"cannot load {config.source!r}: {str(exc).splitlines()[0][:300]}") from None
    model.to(_device(config.device)).eval()
    eos = model.generation_config.eos_token_id
    eos_ids = [e for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if end is not None and end not in eos_ids:
        eos_ids.append(end)
    if not eos_ids and tokenizer.eos_token_id is not None:
        eos_ids.append(tokenizer.eos_token_id)
    window = getattr(model.config, "max_position_embeddings", None)
    name = reference.DISPLAY_NAME if config.source == reference.NAME else config.source
    return LoadedModel(key=config.key(), model=model, tokenizer=tokenizer, name=name, eos_ids=eos_ids,
                       context_window=window, load_s=time.perf_counter() - started)


def release_locked() -> None:
    global _loaded
    _loaded = None
    free_memory()


def release() -> None:
    with _lock:
        release_locked()


def free_memory() -> None:
    """Between cells: drop cached allocations so the next cell's peak is its own."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a requirement of the gpu worker
        pass


def render(tokenizer: Any, request: GenerationRequest) -> tuple[str, str]:
    """(compressible prefix, uncompressed suffix) of the prompt as the model sees it, chat template applied."""
    cut = request.compress_until
    if request.messages is not None:
        messages = [dict(m) for m in request.messages]
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        if cut is not None and users:
            last = messages[users[-1]]
            content = str(last.get("content") or "")
            last["content"] = content[:cut] + _SPLIT + content[cut:]
        prefill = messages[-1].get("role") == "assistant"
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=not prefill,
                                                 continue_final_message=prefill)
        else:
            text = "\n\n".join(str(m.get("content") or "") for m in messages) + "\n"
    else:
        prompt = request.prompt or ""
        text = prompt if cut is None else prompt[:cut] + _SPLIT + prompt[cut:]
        bos = getattr(tokenizer, "bos_token", None)
        if bos and getattr(tokenizer, "add_bos_token", True):
            text = bos + text
    if _SPLIT in text:
        prefix, suffix = text.split(_SPLIT, 1)
        return prefix, suffix
    return text, ""


class LocalBackend:
    """One (method, budget) of a loaded model behind the runner's Backend protocol; one sample at a time."""

    def __init__(self, loaded: LoadedModel, method: str, budget: float, *, files_dir: Path | None = None,
                 query_aware: bool = False, memory_limit_bytes: int | None = None) -> None:
        self.loaded = loaded
        try:
            self.plan: KVPlan = kv_plan(method, budget, files_dir=files_dir, model_name=loaded.name)
        except MethodError as exc:
            raise ModelLoadError(str(exc)) from None
        self.query_aware = query_aware
        self.memory_limit_bytes = memory_limit_bytes
        self._lock = threading.Lock()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encode(self, text: str) -> Any:
        return self.loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids

    def count_prompt(self, request: GenerationRequest) -> int:
        """Tokens of ``request`` as the model will read it (chat template included), without generating."""
        prefix, suffix = render(self.loaded.tokenizer, request)
        return self.encode(prefix).shape[1] + self.encode(suffix).shape[1]

    def generate(self, request: GenerationRequest, on_text: Callable[[str], None] | None = None) -> GenerationResult:
        """`on_text`, when given, receives the answer's new text as tokens are decoded (for streaming)."""
        from evalworkers.kv.generation import generate
        from evalworkers.kv.measure import KVOutOfMemory

        started = time.perf_counter()
        prefix, suffix = render(self.loaded.tokenizer, request)
        prefix_ids, suffix_ids = self.encode(prefix), self.encode(suffix)
        prompt_tokens = prefix_ids.shape[1] + suffix_ids.shape[1]
        window = self.loaded.context_window
        if window and prompt_tokens + request.max_new_tokens > window:
            return GenerationResult.failure(
                f"prompt of {prompt_tokens} tokens + {request.max_new_tokens} new tokens exceeds the model's "
                f"{window}-token window", attempts=1)
        stop = set(self.loaded.eos_ids)
        streamed: list[int] = []
        sent = [""]

        def on_token(token: int) -> None:
            if on_text is None or token in stop:
                return
            streamed.append(token)
            text = self.loaded.tokenizer.decode(streamed, skip_special_tokens=True)
            if len(text) > len(sent[0]) and not text.endswith("\ufffd"):  # whole characters only
                on_text(text[len(sent[0]):])
                sent[0] = text

        with self._lock:  # one generation at a time: the model and the timings are not shared
            try:
                tokens, measured = generate(self.loaded.model, prefix_ids, suffix_ids, self.plan,
                                       max_new_tokens=request.max_new_tokens, eos_ids=self.loaded.eos_ids,
                                       query_aware=self.query_aware, memory_limit_bytes=self.memory_limit_bytes,
                                       on_token=on_token)
            except KVOutOfMemory as exc:
                return GenerationResult(error=f"out of memory: {exc}", attempts=1,
                                        latency_s=time.perf_counter() - started, prompt_tokens=prompt_tokens,
                                        out_of_memory=True, reached_bytes=exc.reached)
        text = self.loaded.tokenizer.decode([t for t in tokens if t not in stop], skip_special_tokens=True)
        return GenerationResult(
            text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=measured.output_tokens,
            latency_s=time.perf_counter() - started, ttft_s=measured.ttft_s,
            decode_tokens_per_s=measured.decode_tokens_per_s,
            attempts=1, finish_reason="stop" if tokens and tokens[-1] in stop else "length",
            efficiency=measured.efficiency,
        )

    def converse(self, conversation: Conversation, on_turn: TurnCallback) -> None:
        """The conversation over one cache: the first turn's context compressed once under this backend's method
        and budget, each later turn appended to it (``kv.generation.converse``). Each turn's tokens are what its
        chat-templated prompt adds to the one before; a template that rewrites earlier turns (so that a prompt does
        not extend the one before) is refused for every needed turn with a message that says so."""
        from evalworkers.kv.generation import TurnGeneration, converse
        from evalworkers.kv.measure import KVOutOfMemory

        started = time.perf_counter()
        answered: set[int] = set()

        def fail(reason: str, **extra: Any) -> None:
            for turn in sorted(conversation.needed - answered):
                on_turn(turn, GenerationResult(error=reason, attempts=1, latency_s=time.perf_counter() - started,
                                               **extra))

        tokenizer = self.loaded.tokenizer
        context, first = render(tokenizer, conversation.turns[0])
        texts = [context + first] + [render(tokenizer, dataclasses.replace(r, compress_until=None))[0]
                                     for r in conversation.turns[1:]]
        for turn in range(2, len(texts) + 1):
            if not texts[turn - 1].startswith(texts[turn - 2]):
                return fail(f"turn {turn}'s prompt does not extend turn {turn - 1}'s: the model's chat template "
                            "rewrites earlier turns, so the conversation cannot grow over one cache")
        context_ids, first_ids = self.encode(context), self.encode(first)
        later_ids = [self.encode(texts[k][len(texts[k - 1]):]) for k in range(1, len(texts))]
        last_tokens = context_ids.shape[1] + first_ids.shape[1] + sum(ids.shape[1] for ids in later_ids)
        window, last_new = self.loaded.context_window, conversation.turns[-1].max_new_tokens
        if window and last_tokens + last_new > window:
            return fail(f"the conversation's last prompt of {last_tokens} tokens + {last_new} new tokens exceeds the "
                        f"model's {window}-token window")
        stop = set(self.loaded.eos_ids)
        mark = [started]

        def turn_done(generated: TurnGeneration, measured: Any) -> None:
            now = time.perf_counter()
            tokens = generated.tokens
            text = tokenizer.decode([t for t in tokens if t not in stop], skip_special_tokens=True)
            answered.add(generated.turn)
            on_turn(generated.turn, GenerationResult(
                text=text.strip(), prompt_tokens=generated.prompt_tokens, completion_tokens=len(tokens),
                latency_s=now - mark[0], ttft_s=generated.ttft_s, decode_tokens_per_s=generated.decode_tokens_per_s,
                attempts=1, finish_reason="stop" if tokens and tokens[-1] in stop else "length", efficiency=measured))
            mark[0] = now

        with self._lock:
            try:
                converse(self.loaded.model, context_ids, first_ids, later_ids, self.plan, needed=conversation.needed,
                         max_new_tokens=[r.max_new_tokens for r in conversation.turns], eos_ids=self.loaded.eos_ids,
                         query_aware=self.query_aware, memory_limit_bytes=self.memory_limit_bytes, on_turn=turn_done)
            except KVOutOfMemory as exc:
                fail(f"out of memory: {exc}", out_of_memory=True, reached_bytes=exc.reached)

    def close(self) -> None:
        free_memory()
