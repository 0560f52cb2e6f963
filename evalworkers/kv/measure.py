"""Measuring what a KV cache holds and what a generation used: bytes, peak memory, a memory cap.

Bytes are read off the cache's tensors after prefill, never computed from the budget, so a method that only
masks keys shows its true (full) size. Quantized caches are measured by their packed tensors and scales.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class KVOutOfMemory(Exception):
    """The generation ran out of memory, or past the backend's cap; ``reached`` is how far it got (bytes)."""

    def __init__(self, message: str, reached: int | None = None) -> None:
        super().__init__(message)
        self.reached = reached


def tensor_bytes(obj: Any) -> int:
    """Bytes held by a tensor, a packed quantized tensor (its inner tensors), or a container of them."""
    if isinstance(obj, torch.Tensor):
        flatten = getattr(obj, "__tensor_flatten__", None)
        if flatten is not None and type(obj) is not torch.Tensor and not isinstance(obj, torch.nn.Parameter):
            names, _ = flatten()
            return sum(tensor_bytes(getattr(obj, name)) for name in names)
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(item) for item in obj)
    if isinstance(obj, dict):
        return sum(tensor_bytes(item) for item in obj.values())
    return 0


def cache_bytes(cache: Any) -> int:
    """Sum of the cache's key/value storage over layers (quantized parts included)."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values", "_quantized_keys", "_quantized_values"):
            total += tensor_bytes(getattr(layer, name, None))
    return total


def zeroed_key_channel_fraction(cache: Any) -> float:
    """The fraction of key channels (per layer and head) that are zero at every cached position: what a
    channel-pruning press such as ThinK removed, read off the cache rather than taken from its setting."""
    zeroed = total = 0
    for layer in getattr(cache, "layers", []):
        keys = getattr(layer, "keys", None)
        if not isinstance(keys, torch.Tensor) or keys.dim() != 4 or keys.shape[2] == 0:
            continue
        empty = (keys == 0).all(dim=2)  # (batch, heads, head_dim)
        zeroed += int(empty.sum())
        total += empty.numel()
    return zeroed / total if total else 0.0


def full_cache_bytes(config: Any, tokens: int, dtype: torch.dtype) -> int:
    """What an uncompressed cache of `tokens` tokens holds for this architecture."""
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    itemsize = torch.empty((), dtype=dtype).element_size()
    return config.num_hidden_layers * 2 * heads * head_dim * tokens * itemsize


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:  # not Linux: fall back to the high-water mark, which can only under-report a delta
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory above the starting point (weights and anything else already held) during a block.

    CUDA: ``max_memory_allocated`` after a reset. CPU: the process's resident set, sampled every few ms by a
    thread, since the kernel's own high-water mark cannot be reset.
    """

    def __init__(self, device: torch.device, interval_s: float = 0.003) -> None:
        self.device = device
        self.interval_s = interval_s
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device) - self.baseline
        return _rss() - self.baseline

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        else:
            self.baseline = _rss()
            self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, _rss() - self.baseline)

    def so_far(self) -> int:
        """The peak up to now, inside the block (bytes above the starting point)."""
        if self.device.type == "cuda":
            return max(torch.cuda.max_memory_allocated(self.device) - self.baseline, 0)
        return max(self.peak, _rss() - self.baseline, 0)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.baseline
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak = max(self.peak, _rss() - self.baseline)
        self.peak = max(self.peak, 0)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started = 0.0

    def start(self) -> None:
        synchronize(self.device)
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        synchronize(self.device)
        return time.perf_counter() - self.started
