"""Process-wide per-host concurrency limits.

Several cells of one submission (or several submissions to one provider) may run in the same worker process;
a shared semaphore per host keeps their sum below what the endpoint was promised, whatever each cell's
concurrency.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

_lock = threading.Lock()
_semaphores: dict[str, tuple[int, threading.BoundedSemaphore]] = {}


def host_key(url: str) -> str:
    """scheme://host:port, lower-cased, with the default port filled in."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "http").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def host_semaphore(url: str, limit: int) -> threading.BoundedSemaphore:
    """The shared semaphore for ``url``'s host; the first caller's ``limit`` wins (see ``set_host_limit``)."""
    if limit < 1:
        raise ValueError("per-host limit must be at least 1")
    key = host_key(url)
    with _lock:
        entry = _semaphores.get(key)
        if entry is None:
            entry = (limit, threading.BoundedSemaphore(limit))
            _semaphores[key] = entry
        return entry[1]


def set_host_limit(url: str, limit: int) -> None:
    """Replace a host's limit (e.g. from admin settings); requests already holding a slot finish normally."""
    if limit < 1:
        raise ValueError("per-host limit must be at least 1")
    with _lock:
        _semaphores[host_key(url)] = (limit, threading.BoundedSemaphore(limit))


def host_limit(url: str) -> int | None:
    with _lock:
        entry = _semaphores.get(host_key(url))
        return entry[0] if entry else None
