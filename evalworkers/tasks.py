"""Thin Celery tasks: they take ids, and delegate. Two run submissions for every kind of model (the queue each
runs on is its submission's, ``ModelKind.queue``: `api` for endpoints, `gpu` for local models); the scheduler
sends ``recover_lost_work`` every RECOVERY_INTERVAL_S."""

from __future__ import annotations

import logging

from celery import shared_task

from evalworkers import liveness, recovery, runner

log = logging.getLogger(__name__)


@shared_task(name="evalworkers.tasks.heartbeat", bind=True)
def heartbeat(self, queue: str) -> str:
    """Record that a worker consumes `queue` (workers also do so by themselves: evalworkers/liveness.py)."""
    worker = self.request.hostname or "unknown"
    liveness.record_seen(worker=worker, queues=[queue])
    return worker


@shared_task(name="evalworkers.tasks.start_submission")
def start_submission(submission_id: int) -> int:
    """Pre-flight check, expand the grid, fan the open cells out on the submission's queue."""
    started = runner.start(submission_id)
    for cell_id in started.cell_ids:
        run_cell.apply_async((cell_id,), queue=started.queue)
    return len(started.cell_ids)


@shared_task(name="evalworkers.tasks.run_cell", bind=True)
def run_cell(self, cell_id: int) -> None:
    runner.run_cell(cell_id, worker=self.request.hostname or "")


@shared_task(name="evalworkers.tasks.recover_lost_work")
def recover_lost_work() -> int:
    """Hand the cells of lost or stuck workers (and starts that made no cells) back to their queues."""
    handed = recovery.lost_cells() + recovery.stalled_starts()
    recovery.forget_old_checks()
    for item in handed:
        log.warning("recovering %s %s on %s: %s", item.task, item.task_id, item.queue, item.reason)
        task = run_cell if item.task == "run_cell" else start_submission
        task.apply_async((item.task_id,), queue=item.queue)
    return len(handed)
