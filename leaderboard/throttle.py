"""Rate limits per client: a fixed window counter in the shared "throttle" cache.

A rate is (count, seconds) as config.env.env_rate reads it (None: no limit). `hit` counts one request and says
whether it is allowed and, if not, how many seconds until the window turns over (the Retry-After value).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.core.cache import caches

Rate = tuple[int, int]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # seconds; 0 when allowed

    def wait_words(self) -> str:
        minutes = math.ceil(self.retry_after / 60)
        if self.retry_after < 120:
            return f"{self.retry_after} seconds"
        return f"{minutes} minutes"


def hit(scope: str, key: str, rate: Rate | None, *, now: float | None = None) -> Verdict:
    """Count one request of `key` (a client address, a user id) under `scope`; refuse past the rate."""
    if rate is None:
        return Verdict(True)
    count, seconds = rate
    now = time.time() if now is None else now
    window = int(now // seconds)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    name = f"{scope}:{digest}:{window}"
    store = caches["throttle"]
    store.add(name, 0, timeout=seconds + 1)
    try:
        used = store.incr(name)
    except ValueError:  # expired between add and incr
        store.set(name, 1, timeout=seconds + 1)
        used = 1
    if used <= count:
        return Verdict(True)
    return Verdict(False, max(1, math.ceil((window + 1) * seconds - now)))
