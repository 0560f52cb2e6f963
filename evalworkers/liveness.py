"""Proof of life from the workers themselves: a heartbeat per worker and queue, and a lease per running cell.

Each worker process writes its ``WorkerHeartbeat`` rows every WORKER_HEARTBEAT_S from a thread started when it is
ready (Celery's ``worker_ready`` signal), so a worker busy with a three-hour cell still shows as alive. Each
running cell holds a ``Lease`` (a token on the cell row), refreshed at the same pace from the task itself; the
scheduler's recovery (``evalworkers/recovery.py``) hands on a cell whose lease went stale.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable

from celery import signals
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

log = logging.getLogger(__name__)


def record_seen(*, worker: str, queues: Iterable[str], started: bool = False) -> None:
    """Upsert the worker's row for each queue as seen now (``started``: also as started now)."""
    from leaderboard.models import WorkerHeartbeat

    now = timezone.now()
    for queue in queues:
        defaults = {"seen_at": now, "stopped_at": None, **({"started_at": now} if started else {})}
        WorkerHeartbeat.objects.update_or_create(worker=worker, queue=queue, defaults=defaults)


def record_stopped(*, worker: str) -> None:
    from leaderboard.models import WorkerHeartbeat

    WorkerHeartbeat.objects.filter(worker=worker, stopped_at__isnull=True).update(stopped_at=timezone.now())


class Ticker:
    """Call ``beat`` every ``interval_s`` seconds on a daemon thread until stopped; a failing beat is logged and
    tried again at the next tick (a database away for a while must not kill the worker)."""

    def __init__(self, name: str, beat: Callable[[], object], interval_s: float) -> None:
        self.beat, self.interval_s = beat, interval_s
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                self.beat()
            except DatabaseError:
                log.warning("%s: could not write a heartbeat", self.thread.name, exc_info=True)
            finally:
                close_old_connections()

    def start(self) -> Ticker:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()


class Lease:
    """A cell held by one run: ``token`` is written on the cell when it is claimed; ``refresh`` proves the run
    alive (``Cell.heartbeat_at``) and returns False once the token is no longer the cell's (the recovery gave the
    cell to another worker, or it was cancelled): the run then stops without finishing the cell."""

    def __init__(self, cell_id: int) -> None:
        self.cell_id = cell_id
        self.token = uuid.uuid4().hex
        self.lost = threading.Event()

    def refresh(self) -> bool:
        from leaderboard.models import Cell, CellStatus

        held = Cell.objects.filter(pk=self.cell_id, lease=self.token, status=CellStatus.RUNNING).update(
            heartbeat_at=timezone.now())
        if not held:
            self.lost.set()
        return bool(held)

    def keep(self, on_lost: Callable[[], None]) -> Ticker:
        """Refresh every WORKER_HEARTBEAT_S on a thread; ``on_lost`` is called once when the lease is gone.

        A run inside a transaction (a cell run in-process by a caller that has not committed its claim) keeps no
        thread: another connection could not see the cell and would take the lease for lost; the run's own
        writes (``runner``'s flushes) refresh it instead."""
        def beat() -> None:
            if not self.refresh():
                on_lost()
                ticker.stop()

        ticker = Ticker(f"lease-{self.cell_id}", beat, settings.WORKER_HEARTBEAT_S)
        if connection.in_atomic_block:
            return ticker
        return ticker.start()


_worker_ticker: list[Ticker] = []


@signals.worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    """In the worker's main process: seen now, then every WORKER_HEARTBEAT_S, for each queue it consumes."""
    worker = getattr(sender, "hostname", "") or "unknown"
    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []  # type: ignore[attr-defined]
    try:
        record_seen(worker=worker, queues=queues, started=True)
    except DatabaseError:
        log.warning("could not record worker %s as started", worker, exc_info=True)
    _worker_ticker.append(Ticker("heartbeat", lambda: record_seen(worker=worker, queues=queues),
                                 settings.WORKER_HEARTBEAT_S).start())


@signals.worker_shutdown.connect
def _stop_heartbeat(sender: object = None, **_: object) -> None:
    """A clean shutdown says so (shown as stopped, not lost); a killed worker simply stops beating."""
    for ticker in _worker_ticker:
        ticker.stop()
    worker = getattr(sender, "hostname", "")
    if worker:
        try:
            record_stopped(worker=worker)
        except DatabaseError:
            log.warning("could not record worker %s as stopped", worker, exc_info=True)
