"""Thin Celery tasks: they take ids, load rows and delegate to plain functions."""

from __future__ import annotations

from celery import shared_task

from evalworkers import heartbeat as heartbeat_mod


@shared_task(name="evalworkers.tasks.heartbeat", bind=True)
def heartbeat(self, queue: str) -> str:
    """Write a row proving that a worker consumes `queue` (used by the status page and the tests)."""
    return heartbeat_mod.beat(worker=self.request.hostname or "unknown", queue=queue)
