"""Greedy generation under a KV plan, with its efficiency measured.

Context-only (kvpress's setting, the default): the context is prefilled under the press, then the question is
appended uncompressed at the positions it would have had. Query-aware: context and question are prefilled and
compressed together. The full cache prefills the whole prompt in one pass, exactly as ``model.generate`` does,
so a 100% budget reproduces the uncompressed model token for token.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, QuantizedCache

from evalworkers.efficiency import Efficiency
from evalworkers.kv.measure import (
    KVOutOfMemory,
    PeakMemory,
    Timer,
    cache_bytes,
    full_cache_bytes,
    zeroed_key_channel_fraction,
)
from evalworkers.kv.registry import KVPlan


@dataclass(frozen=True)
class Generation:
    """What one greedy generation measured: token counts, time to first token and decode speed (seconds,
    tokens per second; None when at most one token was generated), and its KV figures (``Efficiency``)."""

    prompt_tokens: int
    compressed_tokens: int  # tokens that went through the press (context only, or the whole prompt)
    output_tokens: int
    ttft_s: float
    decode_tokens_per_s: float | None
    efficiency: Efficiency


@contextlib.contextmanager
def attention(model: Any, implementation: str) -> Iterator[None]:
    """Switch the attention implementation for one generation (H2O needs eager attention weights)."""
    current = model.config._attn_implementation
    if current == implementation:
        yield
        return
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(current)


@contextlib.contextmanager
def memory_cap(model: Any, cache: Any, meter: PeakMemory, limit: int | None) -> Iterator[None]:
    """Raise KVOutOfMemory as soon as, after any decoder layer, the KV cache (or the device's allocation above
    the baseline, on CUDA) passes `limit` bytes: a cap the backend enforces, so an OOM is tested for real."""
    if not limit:
        yield
        return

    def check(module: Any, args: Any, output: Any) -> None:
        held = cache_bytes(cache)
        if meter.device.type == "cuda":
            held = max(held, meter.current())
        if held > limit:
            raise KVOutOfMemory(f"needed more than the {limit:,}-byte memory cap", reached=held)

    layers = model.model.language_model.layers if hasattr(model.model, "language_model") else model.model.layers
    hooks = [layer.register_forward_hook(check) for layer in layers]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def logical_kept_fraction(plan: KVPlan, cache: Any) -> float:
    """What a masking method kept of the KV bytes, measured after prefill. Channel pruning (ThinK) is read off the
    cache: keys are half the bytes, so zeroing a fraction z of key channels keeps 1 - z/2. Token masking reports
    itself: ``1 - compression_ratio`` of the press (AdaKV: the evicted share; DuoAttention: the streaming heads'
    share outside their sink and recent windows, on this prompt). The plan's budget when the press reports nothing."""
    if plan.logical_from == "key_channels":
        return 1.0 - zeroed_key_channel_fraction(cache) / 2
    try:
        ratio = float(plan.press.compression_ratio)
    except (AttributeError, AssertionError, TypeError, ValueError):
        return plan.budget
    return 1.0 - ratio


def _new_cache(model: Any, plan: KVPlan) -> Any:
    if plan.quant_bits is not None:
        return QuantizedCache(backend="quanto", config=model.config, nbits=plan.quant_bits)
    return DynamicCache()


@torch.inference_mode()
def generate(model: Any, prefix_ids: torch.Tensor, suffix_ids: torch.Tensor, plan: KVPlan, *, max_new_tokens: int,
             eos_ids: Sequence[int], query_aware: bool = False, memory_limit_bytes: int | None = None,
             on_token: Callable[[int], None] | None = None) -> tuple[list[int], Generation]:
    """Generate greedily after prefix+suffix (1 x n token tensors); only the prefix is compressed unless
    `query_aware` (or the plan is the full cache, which compresses nothing)."""
    device = model.device
    prefix_ids, suffix_ids = prefix_ids.to(device), suffix_ids.to(device)
    whole = torch.cat([prefix_ids, suffix_ids], dim=1)
    one_pass = plan.is_full or query_aware or suffix_ids.shape[1] == 0
    compressed = whole if one_pass else prefix_ids
    cache = _new_cache(model, plan)
    press = plan.press(model) if plan.press is not None else contextlib.nullcontext()
    dtype = next(model.parameters()).dtype
    stop = set(int(i) for i in eos_ids)
    timer = Timer(device)
    meter = PeakMemory(device)
    tokens: list[int] = []
    try:
        with meter, attention(model, "eager" if plan.needs_eager else model.config._attn_implementation), \
                memory_cap(model, cache, meter, memory_limit_bytes):
            timer.start()
            with press:
                out = model(input_ids=compressed, past_key_values=cache, use_cache=True, logits_to_keep=1)
            prefill_s = timer.elapsed()
            kv_bytes = cache_bytes(cache)
            logical = None if plan.physical else logical_kept_fraction(plan, cache)  # before anything is appended
            position = whole.shape[1]
            if not one_pass:  # the question, uncompressed, at the positions it has in the full prompt
                positions = torch.arange(prefix_ids.shape[1], position, device=device).unsqueeze(0)
                out = model(input_ids=suffix_ids, past_key_values=cache, position_ids=positions, logits_to_keep=1)
            next_id = out.logits[0, -1].argmax()
            tokens.append(int(next_id))
            ttft_s = timer.elapsed()
            if on_token is not None:
                on_token(tokens[-1])
            while len(tokens) < max_new_tokens and tokens[-1] not in stop:
                out = model(input_ids=next_id.view(1, 1), past_key_values=cache,
                            position_ids=torch.tensor([[position]], device=device))
                position += 1
                next_id = out.logits[0, -1].argmax()
                tokens.append(int(next_id))
                if on_token is not None:
                    on_token(tokens[-1])
            total_s = timer.elapsed()
            kv_bytes_end = cache_bytes(cache)
    except torch.cuda.OutOfMemoryError as exc:
        raise KVOutOfMemory(f"CUDA out of memory: {str(exc).splitlines()[0][:200]}", reached=meter.peak) from None
    except MemoryError:
        raise KVOutOfMemory("the process ran out of memory", reached=meter.peak) from None
    full = full_cache_bytes(model.config, compressed.shape[1], dtype)
    kept = kv_bytes / full if full else 1.0
    if logical is not None:  # masked, not freed: the bytes stay the full cache's, the fraction is logical
        kept = logical
    decoded = len(tokens) - 1
    return tokens, Generation(
        prompt_tokens=whole.shape[1], compressed_tokens=compressed.shape[1], output_tokens=len(tokens),
        ttft_s=ttft_s, decode_tokens_per_s=decoded / (total_s - ttft_s) if decoded > 0 and total_s > ttft_s else None,
        efficiency=Efficiency(kv_bytes=kv_bytes, kv_bytes_full=full, kept_fraction=kept, physical=plan.physical,
                              query_aware=query_aware and not plan.is_full, peak_memory_bytes=meter.peak,
                              prefill_s=prefill_s, kv_bytes_end=kv_bytes_end),
    )


@dataclass(frozen=True)
class TurnGeneration:
    """One answered turn of a conversation over one compressed context (``converse``): ``turn`` (1-based), the
    generated ``tokens``, the conversation's ``prompt_tokens`` up to this turn's answer (uncompressed count),
    ``ttft_s`` from this turn's new tokens entering the model to its first answer token (for turn 1 the prefill
    and compression included), decode speed (tokens/s, None for one token) and ``kv_bytes_held``: the cache's bytes
    once this turn's answer was generated."""

    turn: int
    tokens: list[int]
    prompt_tokens: int
    ttft_s: float
    decode_tokens_per_s: float | None
    kv_bytes_held: int


def _way_back(cache: Any) -> Callable[[], None]:
    """Undo what is appended to ``cache`` from now on (an answer's tokens, so that the next turn's history holds the
    expected reply instead). Cache layers grow by replacing their tensors (``torch.cat``, a fresh quantization),
    never by writing into them, so the layers' attributes as they are now (references, no copies) are the way back,
    for plain and quantized caches alike; kvpress's pipeline cuts plain caches back to their lengths instead."""
    saved = [dict(vars(layer)) for layer in cache.layers]
    length = cache.get_seq_length()

    def restore() -> None:
        for layer, state in zip(cache.layers, saved, strict=True):
            layer.__dict__.clear()
            layer.__dict__.update(state)
        if cache.get_seq_length() != length:  # a layer wrote into its tensors after all: never answer from it
            raise RuntimeError(f"the KV cache did not return to {length} tokens after an answer")
    return restore


def _decode(model: Any, cache: Any, out: Any, position: int, max_new_tokens: int, stop: set[int],
            timer: Timer) -> tuple[list[int], float, float]:
    """Greedy tokens after ``out`` (the logits of the last fed token), fed back at ``position`` onwards; returns
    (tokens, seconds to the first, seconds in all) on ``timer``, which was started when the turn's input was fed."""
    next_id = out.logits[0, -1].argmax()
    tokens = [int(next_id)]
    ttft_s = timer.elapsed()
    while len(tokens) < max_new_tokens and tokens[-1] not in stop:
        out = model(input_ids=next_id.view(1, 1), past_key_values=cache,
                    position_ids=torch.tensor([[position]], device=model.device))
        position += 1
        next_id = out.logits[0, -1].argmax()
        tokens.append(int(next_id))
    return tokens, ttft_s, timer.elapsed()


@torch.inference_mode()
def converse(model: Any, context_ids: torch.Tensor, first_ids: torch.Tensor, later_ids: Sequence[torch.Tensor],
             plan: KVPlan, *, needed: Collection[int], max_new_tokens: Sequence[int], eos_ids: Sequence[int],
             query_aware: bool = False, memory_limit_bytes: int | None = None,
             on_turn: Callable[[TurnGeneration, Efficiency], None]) -> Efficiency:
    """A conversation over one context compressed once (shared-context mode, after SCBench's multi-turn setting).

    ``context_ids``: the compressible context (1 x n); ``first_ids``: the first question (with the chat markup up
    to the answer); ``later_ids[k]``: what turn k+2 appends (the expected reply of the turn before, then its
    question). The context is prefilled under the press once: with the first question in view when
    ``query_aware`` (a server compresses when the first question arrives), else alone with the question appended
    uncompressed (kvpress's setting). Every later turn is appended to that compressed cache, uncompressed, at the
    positions it has in the whole conversation. Turns in ``needed`` (1-based) are answered greedily, each answer
    then taken back out of the cache; other turns are only read. ``on_turn`` receives each answered turn with the
    compression's figures (for the last turn with ``kv_bytes_after_turns``). Returns those figures. Raises
    KVOutOfMemory like ``generate``."""
    device = model.device
    context_ids, first_ids = context_ids.to(device), first_ids.to(device)
    turns = 1 + len(later_ids)
    one_pass = plan.is_full or query_aware or first_ids.shape[1] == 0
    first_prompt = torch.cat([context_ids, first_ids], dim=1)
    compressed = first_prompt if one_pass else context_ids
    cache = _new_cache(model, plan)
    press = plan.press(model) if plan.press is not None else contextlib.nullcontext()
    dtype = next(model.parameters()).dtype
    stop = set(int(i) for i in eos_ids)
    timer = Timer(device)
    meter = PeakMemory(device)
    try:
        with meter, attention(model, "eager" if plan.needs_eager else model.config._attn_implementation), \
                memory_cap(model, cache, meter, memory_limit_bytes):
            timer.start()
            with press:
                out = model(input_ids=compressed, past_key_values=cache, use_cache=True, logits_to_keep=1)
            prefill_s = timer.elapsed()
            kv_bytes = cache_bytes(cache)
            logical = None if plan.physical else logical_kept_fraction(plan, cache)
            full = full_cache_bytes(model.config, compressed.shape[1], dtype)
            kept = logical if logical is not None else (kv_bytes / full if full else 1.0)
            measured = Efficiency(kv_bytes=kv_bytes, kv_bytes_full=full, kept_fraction=kept, physical=plan.physical,
                                  query_aware=query_aware and not plan.is_full, prefill_s=prefill_s)
            position = first_prompt.shape[1]
            if not one_pass:
                positions = torch.arange(context_ids.shape[1], position, device=device).unsqueeze(0)
                out = model(input_ids=first_ids, past_key_values=cache, position_ids=positions, logits_to_keep=1)
            for turn in range(1, turns + 1):
                if turn > 1:
                    appended = later_ids[turn - 2].to(device)
                    timer.start()
                    positions = torch.arange(position, position + appended.shape[1], device=device).unsqueeze(0)
                    out = model(input_ids=appended, past_key_values=cache, position_ids=positions, logits_to_keep=1)
                    position += appended.shape[1]
                if turn not in needed:
                    continue
                back = _way_back(cache)
                tokens, ttft_s, total_s = _decode(model, cache, out, position, max_new_tokens[turn - 1], stop, timer)
                held = cache_bytes(cache)
                back()
                decoded = len(tokens) - 1
                figures = dataclasses.replace(measured, peak_memory_bytes=meter.so_far(),
                                              kv_bytes_after_turns=held if turn == turns else None)
                on_turn(TurnGeneration(
                    turn=turn, tokens=tokens, prompt_tokens=position, ttft_s=ttft_s,
                    decode_tokens_per_s=decoded / (total_s - ttft_s) if decoded > 0 and total_s > ttft_s else None,
                    kv_bytes_held=held), figures)
    except torch.cuda.OutOfMemoryError as exc:
        raise KVOutOfMemory(f"CUDA out of memory: {str(exc).splitlines()[0][:200]}", reached=meter.peak) from None
    except MemoryError:
        raise KVOutOfMemory("the process ran out of memory", reached=meter.peak) from None
    return dataclasses.replace(measured, peak_memory_bytes=meter.peak)
