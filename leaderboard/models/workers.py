"""What the workers are doing, kept current by Celery signals (see leaderboard/task_records.py)."""

from __future__ import annotations

from django.db import models


class TaskState(models.TextChoices):
    QUEUED = "queued", "Queued"
    STARTED = "started", "Started"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REVOKED = "revoked", "Revoked"


class TaskRecord(models.Model):
    task_id = models.CharField(max_length=64, unique=True)
    task_name = models.CharField(max_length=120)
    queue = models.CharField(max_length=40, blank=True)
    state = models.CharField(max_length=10, choices=TaskState.choices, default=TaskState.QUEUED)
    args = models.JSONField(default=list, blank=True, help_text="Ids only; tasks never take secrets or objects.")
    worker = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [models.Index(fields=["state", "-created_at"], name="taskrecord_state_created")]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.task_id[:8]}] {self.state}"


class WorkerHeartbeat(models.Model):
    """One row per worker and queue, refreshed every WORKER_HEARTBEAT_S by the worker itself
    (evalworkers/liveness.py): proof that a worker consumes that queue. Not seen for WORKER_LOST_AFTER_S: lost."""

    worker = models.CharField(max_length=200)
    queue = models.CharField(max_length=40)
    seen_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the worker process started.")
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="When it shut down cleanly; null: running.")

    class Meta:
        ordering = ("-seen_at",)
        constraints = [models.UniqueConstraint(fields=["worker", "queue"], name="heartbeat_unique_worker_queue")]

    def __str__(self) -> str:
        return f"{self.worker} on {self.queue}"
