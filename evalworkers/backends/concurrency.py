"""Running many samples through one backend with bounded concurrency, in order, errors as results."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from evalworkers.backends.base import Backend, GenerationRequest, GenerationResult

if TYPE_CHECKING:
    from evalworkers.backends.retry import CircuitBreaker


RequestOrBuilder = GenerationRequest | Callable[[], GenerationRequest]


def generate_one(
    backend: Backend,
    request: RequestOrBuilder,
    breaker: CircuitBreaker | None,
    stop: threading.Event | None,
) -> GenerationResult:
    if stop is not None and stop.is_set():
        return GenerationResult.failure("cancelled")
    if breaker is not None and breaker.is_open:
        return GenerationResult.failure(breaker.message())
    if not isinstance(request, GenerationRequest):
        request = request()  # built here, overlapping other requests' network time; its errors propagate
    delegates = breaker is not None and getattr(backend, "accepts_breaker", False)
    try:
        if delegates:
            return backend.generate(request, breaker=breaker)  # type: ignore[call-arg]
        result = backend.generate(request)
    except Exception as exc:  # a backend bug must not lose the other samples
        result = GenerationResult.failure(f"backend error: {type(exc).__name__}: {str(exc)[:160]}")
    if breaker is not None and not delegates:
        if result.ok:
            breaker.record_success()
        else:
            breaker.record_failure(result.error or "error")
    return result


def generate_many(
    backend: Backend,
    requests: Sequence[RequestOrBuilder],
    *,
    concurrency: int = 8,
    breaker: CircuitBreaker | None = None,
    on_result: Callable[[int, GenerationResult], None] | None = None,
    stop: threading.Event | None = None,
) -> list[GenerationResult]:
    """One result per request, in request order; failures come back as results with ``error`` set.

    At most ``concurrency`` requests are in flight. Once ``breaker`` opens or ``stop`` is set, requests not
    yet started return at once with that reason. ``on_result(index, result)`` runs in the calling thread as
    each result arrives (completion order), so it may use thread-bound resources such as a Django DB
    connection. A request may be given as a zero-argument builder, called on the request thread; an error
    while building propagates (it is a bug in the caller, not an endpoint failure).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    results: list[GenerationResult | None] = [None] * len(requests)
    if not requests:
        return []
    # Completions arrive through a queue: waiting on the pending set (concurrent.futures.wait) costs O(pending)
    # per result, which at thousands of samples starved the request threads of the GIL.
    finished: queue.SimpleQueue[tuple[int, Future[GenerationResult]]] = queue.SimpleQueue()
    with ThreadPoolExecutor(
        max_workers=min(concurrency, len(requests)), thread_name_prefix="generate"
    ) as pool:
        for index, request in enumerate(requests):
            future = pool.submit(generate_one, backend, request, breaker, stop)
            future.add_done_callback(lambda f, i=index: finished.put((i, f)))
        try:
            for _ in range(len(requests)):
                index, future = finished.get()
                results[index] = future.result()
                if on_result is not None:
                    on_result(index, results[index])  # type: ignore[arg-type]
        except BaseException:
            # e.g. Celery's soft time limit or a failing callback: drop queued work, let in-flight calls end.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [r for r in results if r is not None]
