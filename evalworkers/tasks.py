"""Thin Celery tasks: they take ids, load rows and delegate to plain functions."""

from __future__ import annotations

from celery import shared_task

from evalworkers import heartbeat as heartbeat_mod
from evalworkers import runner


@shared_task(name="evalworkers.tasks.heartbeat", bind=True)
def heartbeat(self, queue: str) -> str:
    """Write a row proving that a worker consumes `queue` (used by the status page and the tests)."""
    return heartbeat_mod.beat(worker=self.request.hostname or "unknown", queue=queue)


@shared_task(name="evalworkers.tasks.start_submission")
def start_submission(submission_id: int) -> int:
    """Probe the endpoint, expand the grid, fan the cells out on the `api` queue."""
    cell_ids = runner.start(submission_id)
    for cell_id in cell_ids:
        run_cell.delay(cell_id)
    return len(cell_ids)


@shared_task(name="evalworkers.tasks.run_cell")
def run_cell(cell_id: int) -> None:
    runner.run_cell(cell_id)


@shared_task(name="evalworkers.tasks.start_local_submission")
def start_local_submission(submission_id: int) -> int:
    """On a `gpu` worker: check the methods, load the model once, fan the cells out on the `gpu` queue."""
    cell_ids = runner.start(submission_id)
    for cell_id in cell_ids:
        run_local_cell.delay(cell_id)
    return len(cell_ids)


@shared_task(name="evalworkers.tasks.run_local_cell")
def run_local_cell(cell_id: int) -> None:
    runner.run_cell(cell_id)
