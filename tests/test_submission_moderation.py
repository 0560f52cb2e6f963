"""Staff moderate submissions in admin: approve, cancel, re-run, hide, flag — each logged with who and when."""

from __future__ import annotations

import pytest

from leaderboard import moderation
from leaderboard.models import (
    Cell,
    EventAction,
    Submission,
    SubmissionStatus,
    TaskRecord,
    Visibility,
)
from tests.factories import make_submission

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/leaderboard/submission/"


def act(client, action: str, *subs: Submission):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [s.pk for s in subs]}, follow=True)


def test_approving_queues_the_start_task_on_the_api_queue(client, charlie, django_capture_on_commit_callbacks):
    sub = make_submission(status=SubmissionStatus.PENDING_REVIEW)
    client.force_login(charlie)
    with django_capture_on_commit_callbacks(execute=True):
        act(client, "approve", sub)
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.QUEUED and sub.queued_at is not None
    record = TaskRecord.objects.get(task_name="evalworkers.tasks.start_submission")
    assert record.args == [sub.pk] and record.queue == "api"
    assert sub.events.get().action == EventAction.APPROVED and sub.events.get().actor == charlie


def test_approving_a_running_submission_is_refused_with_a_message(client, charlie) -> None:
    sub = make_submission(status=SubmissionStatus.RUNNING)
    client.force_login(charlie)
    body = act(client, "approve", sub).content.decode()
    assert "not pending review" in body
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.RUNNING and not sub.events.exists()


def test_cancelling_stops_open_cells_and_erases_the_key(client, charlie) -> None:
    sub = make_submission(status=SubmissionStatus.RUNNING, api_key="sk-abc")
    task = sub.version.tasks.first()
    Cell.objects.create(submission=sub, task=task, length=512, status="running")
    Cell.objects.create(submission=sub, task=task, length=1024, status="completed", score=90.0)
    client.force_login(charlie)
    act(client, "cancel", sub)
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.CANCELLED and not sub.has_api_key
    assert sorted(sub.cells.values_list("status", flat=True)) == ["cancelled", "completed"]


def test_rerun_replaces_the_results_and_keeps_the_history(client, charlie, django_capture_on_commit_callbacks):
    sub = make_submission(status=SubmissionStatus.FAILED, failure_reason="endpoint down")
    Cell.objects.create(submission=sub, task=sub.version.tasks.first(), length=512, status="failed")
    client.force_login(charlie)
    with django_capture_on_commit_callbacks(execute=True):
        act(client, "rerun", sub)
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.QUEUED and sub.run_number == 2 and sub.failure_reason == ""
    assert not sub.cells.exists()
    assert sub.events.get().note == "run 2"


def test_rerun_of_a_queued_submission_is_refused(charlie) -> None:
    sub = make_submission(status=SubmissionStatus.QUEUED)
    with pytest.raises(moderation.ActionNotAllowed, match="only a completed, failed or cancelled"):
        moderation.rerun(sub, charlie)


def test_hide_and_flag_change_visibility_with_a_public_note(client, charlie) -> None:
    a = make_submission(status=SubmissionStatus.COMPLETED)
    b = make_submission(status=SubmissionStatus.COMPLETED, version=a.version)
    client.force_login(charlie)
    act(client, "hide", a)
    act(client, "flag", b)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.visibility == Visibility.HIDDEN
    assert b.visibility == Visibility.FLAGGED and b.public_note
    assert [e.action for e in b.events.all()] == [EventAction.FLAGGED]


def test_a_flag_without_a_note_is_refused(charlie) -> None:
    sub = make_submission(status=SubmissionStatus.COMPLETED)
    with pytest.raises(moderation.ActionNotAllowed, match="public note"):
        moderation.flag(sub, charlie, "  ")


def test_submissions_are_listed_with_status_and_version_filters(client, charlie) -> None:
    done = make_submission(status=SubmissionStatus.COMPLETED)
    failed = make_submission(status=SubmissionStatus.FAILED, version=done.version)
    client.force_login(charlie)
    body = client.get(CHANGELIST, {"status__exact": "failed", "version__id__exact": done.version.pk}).content.decode()
    assert f"/admin/leaderboard/submission/{failed.pk}/change/" in body
    assert f"/admin/leaderboard/submission/{done.pk}/change/" not in body


def test_a_non_staff_user_cannot_reach_the_admin(client, alice) -> None:
    sub = make_submission(status=SubmissionStatus.PENDING_REVIEW)
    client.force_login(alice)
    response = client.post(CHANGELIST, {"action": "approve", "_selected_action": [sub.pk]})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.PENDING_REVIEW
