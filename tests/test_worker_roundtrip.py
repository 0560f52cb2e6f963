"""web -> queue -> real Celery worker process -> database, on Redis and on the embedded broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from config.env import filesystem_transport_options
from evalworkers.celery import app
from evalworkers.tasks import heartbeat
from leaderboard.models import TaskRecord, TaskState, WorkerHeartbeat
from tests.conftest import wait_for


def publish_heartbeat(connection: Connection, queue: str) -> str:
    result = heartbeat.apply_async(args=[queue], queue=queue, connection=connection)
    return result.id


def assert_worker_ran_it(worker, task_id: str, queue: str) -> None:
    wait_for(lambda: WorkerHeartbeat.objects.filter(worker=worker.name, queue=queue).exists(), 90,
             f"worker {worker.name} to write its heartbeat for {queue}", worker.output)
    record = wait_for(lambda: TaskRecord.objects.filter(task_id=task_id, state=TaskState.SUCCEEDED).first(), 30,
                      "the task record to reach succeeded", worker.output)
    assert record.worker == worker.name
    assert record.task_name == "evalworkers.tasks.heartbeat"


@pytest.mark.django_db(transaction=True)
def test_a_worker_on_redis_runs_a_task_that_writes_a_row(require_postgres, redis_url, start_worker) -> None:
    worker = start_worker(redis_url)
    with Connection(redis_url) as conn:
        api_id = publish_heartbeat(conn, "api")
        gpu_id = publish_heartbeat(conn, "gpu")
    assert TaskRecord.objects.get(task_id=api_id).state in (TaskState.QUEUED, TaskState.STARTED,
                                                            TaskState.SUCCEEDED)
    assert_worker_ran_it(worker, api_id, "api")
    assert_worker_ran_it(worker, gpu_id, "gpu")
    assert worker.stop() == 0, worker.output()


@pytest.mark.django_db(transaction=True)
def test_a_worker_on_the_embedded_filesystem_broker_needs_no_server(tmp_path: Path, start_worker) -> None:
    var = tmp_path / "var"
    worker = start_worker("filesystem://", extra_env={"VAR_DIR": str(var)})
    options = filesystem_transport_options(var / "broker")
    with Connection("filesystem://", transport_options=options) as conn:
        task_id = publish_heartbeat(conn, "api")
    assert_worker_ran_it(worker, task_id, "api")
    assert worker.stop() == 0, worker.output()


def test_tasks_go_to_the_queue_they_are_sent_to_and_default_to_api() -> None:
    router = app.amqp.router
    assert router.route({}, "evalworkers.tasks.run_cell")["queue"].name == "api"
    assert router.route({}, "evalworkers.tasks.start_submission")["queue"].name == "api"
    assert router.route({"queue": "gpu"}, "evalworkers.tasks.run_cell")["queue"].name == "gpu"
    assert router.route({"queue": "gpu"}, "evalworkers.tasks.start_submission")["queue"].name == "gpu"


def test_celery_reads_the_namespaced_settings() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert {q.name for q in conf.task_queues} == {"api", "gpu", "control"}
