"""Retry timing, Retry-After parsing and the per-cell circuit breaker.

Kept free of HTTP client types so the same policy can drive any backend and be tested without a network.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Statuses worth another try: timeouts, conflicts, rate limits and server-side failures.
RETRYABLE_4XX = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    """4xx other than 408/409/429 mean the request itself is wrong, so repeating it only wastes quota."""
    return status in RETRYABLE_4XX or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``max_retries`` counts retries after the first attempt."""

    max_retries: int = 4
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base_s < 0 or self.backoff_cap_s < 0 or self.retry_after_cap_s < 0:
            raise ValueError("backoff times must be >= 0")

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Delay before retry ``retry_number`` (0-based): half fixed, half random, so workers spread out."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2**retry_number))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """The server's Retry-After (capped) wins over our own backoff when it asks for longer."""
        own = self.backoff(retry_number, rng)
        if retry_after is None:
            return own
        return max(own, min(retry_after, self.retry_after_cap_s))


class Deadline:
    """A total time budget for one request, retries and waits included."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def remaining(self) -> float:
        return max(0.0, self.seconds - self.elapsed())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


class CircuitOpenError(RuntimeError):
    """Raised by ``CircuitBreaker.check`` so a caller can fail the cell with the breaker's reason."""


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failed samples and stays open (one breaker per cell).

    An open breaker makes pending and in-flight requests give up at once, so a dead endpoint costs N samples
    of waiting rather than the whole cell. It is thread-safe: generate_many's workers share one.
    """

    def __init__(self, threshold: int = 5) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self._lock = threading.Lock()
        self._consecutive = 0
        self._open = False
        self._opened = threading.Event()
        self._reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def reason(self) -> str | None:
        """The failure that tripped the breaker (None while closed)."""
        return self._reason if self._open else None

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def record_success(self) -> None:
        with self._lock:
            if not self._open:
                self._consecutive = 0

    def record_failure(self, reason: str) -> None:
        with self._lock:
            self._consecutive += 1
            if not self._open and self._consecutive >= self.threshold:
                self._open = True
                self._opened.set()
                self._reason = f"{self._consecutive} consecutive failures; last: {reason}"

    def wait_open(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early (True) if the breaker opens meanwhile."""
        return self._opened.wait(timeout)

    def check(self) -> None:
        if self._open:
            raise CircuitOpenError(self.message())

    def message(self) -> str:
        return f"circuit open after {self._reason}" if self._open else "circuit closed"

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"CircuitBreaker(threshold={self.threshold}, {state}, consecutive={self._consecutive})"
