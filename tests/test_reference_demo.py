"""`make run`'s first-run demo: the reference model queued once on `smoke`, on the gpu path."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from leaderboard.models import ModelKind, Submission, SubmissionStatus, TaskRecord

pytestmark = pytest.mark.django_db


def test_the_demo_queues_the_reference_model_once_on_the_gpu_queue(django_capture_on_commit_callbacks) -> None:
    call_command("seed_versions", stdout=StringIO())
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("submit_reference_demo", stdout=out)
        call_command("submit_reference_demo", stdout=out)
    sub = Submission.objects.get()
    assert sub.model.kind == ModelKind.HUGGINGFACE and sub.model.hf_repo == "reference"
    assert sub.status == SubmissionStatus.QUEUED and sub.version.slug == "smoke"
    assert sub.kv_methods == ["streaming_llm", "snapkv"] and sub.kv_budgets == [0.25]
    assert "queued" in out.getvalue() and "already there (queued)" in out.getvalue()
    record = TaskRecord.objects.get()
    assert (record.task_name, record.queue, record.args) == (
        "evalworkers.tasks.start_submission", "gpu", [sub.pk])


def test_the_demo_names_a_missing_version() -> None:
    with pytest.raises(CommandError, match=r"run `manage\.py seed_versions` first"):
        call_command("submit_reference_demo", "--version", "nope")
