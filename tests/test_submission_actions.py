"""Actions on a submission from its status page: the owner cancels or withdraws, staff moderate; others cannot.

Three users as in healthchecks' tests: alice owns the submission, bob is another user, charlie is staff.
"""

from __future__ import annotations

import pytest

from leaderboard.models import (
    Cell,
    CellStatus,
    EventAction,
    LeaderboardRow,
    Submission,
    SubmissionStatus,
    TaskRecord,
    Visibility,
)
from tests.factories import make_completed, make_default_version, make_submission

pytestmark = pytest.mark.django_db
OWNER_ACTIONS = ["cancel", "withdraw"]
STAFF_ACTIONS = ["approve", "reject", "rerun", "flag", "hide", "show", "baseline", "unbaseline"]


@pytest.fixture
def version():
    return make_default_version("t1", lengths=[512, 1024])


@pytest.fixture
def completed(version, alice) -> Submission:
    sub = make_completed(version, "Alice-7B", {512: 90, 1024: 80})
    Submission.objects.filter(pk=sub.pk).update(submitter=alice)
    sub.refresh_from_db()
    return sub


def act(client, sub: Submission, action: str, note: str = "", follow: bool = False):
    return client.post(f"/submissions/{sub.pk}/actions", {"action": action, "note": note}, follow=follow)


def last_event(sub: Submission):
    return sub.events.order_by("-pk").first()


# --- who may act ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", OWNER_ACTIONS + STAFF_ACTIONS)
def test_another_user_can_do_nothing_to_someone_elses_submission(client, bob, alice, version, action) -> None:
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.RUNNING)
    client.force_login(bob)
    assert act(client, sub, action, "note").status_code == 403
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.RUNNING and not sub.events.exists()


@pytest.mark.parametrize("action", STAFF_ACTIONS)
def test_the_owner_cannot_use_staff_actions(client, alice, version, action) -> None:
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.PENDING_REVIEW)
    client.force_login(alice)
    assert act(client, sub, action, "note").status_code == 403
    assert not Submission.objects.get(pk=sub.pk).events.exists()


@pytest.mark.parametrize("action", OWNER_ACTIONS + STAFF_ACTIONS)
def test_an_anonymous_visitor_is_sent_to_log_in(client, alice, version, action) -> None:
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.RUNNING)
    response = act(client, sub, action)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not sub.events.exists()


def test_actions_take_a_post_and_a_known_name(client, alice, version) -> None:
    sub = make_submission(version=version, submitter=alice)
    client.force_login(alice)
    assert client.get(f"/submissions/{sub.pk}/actions").status_code == 405
    assert act(client, sub, "explode").status_code == 400
    assert client.post("/submissions/999999/actions", {"action": "cancel"}).status_code == 404


def test_a_withdrawn_submission_is_invisible_to_others_even_for_actions(client, bob, completed, alice) -> None:
    completed.visibility = Visibility.HIDDEN
    completed.save()
    client.force_login(bob)
    assert act(client, completed, "show").status_code == 404
    assert client.get(f"/submissions/{completed.pk}/").status_code == 404


# --- the owner ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [SubmissionStatus.QUEUED, SubmissionStatus.RUNNING, SubmissionStatus.PENDING_REVIEW])
def test_the_owner_cancels_an_active_submission_and_the_key_is_erased(client, alice, version, status) -> None:
    sub = make_submission(version=version, submitter=alice, status=status, api_key="sk-cancel-me-123")
    Cell.objects.create(submission=sub, task=version.tasks.first(), length=512, status=CellStatus.RUNNING)
    client.force_login(alice)
    page = act(client, sub, "cancel", follow=True).content.decode()
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.CANCELLED and not sub.has_api_key and sub.finished_at
    assert sub.cells.get().status == CellStatus.CANCELLED
    event = last_event(sub)
    assert event.action == EventAction.CANCELLED and event.actor == alice
    assert "Cancelled; workers stop" in page and "Cancelled by alice" in page


def test_cancelling_an_ended_submission_is_refused_with_the_reason(client, alice, completed) -> None:
    client.force_login(alice)
    page = act(client, completed, "cancel", follow=True).content.decode()
    assert "only a queued or running one can be cancelled" in page
    assert Submission.objects.get(pk=completed.pk).status == SubmissionStatus.COMPLETED


def test_the_owner_withdraws_a_completed_result_from_the_leaderboard(client, alice, bob, completed) -> None:
    assert completed.version.slug in client.get("/").content.decode() and "Alice-7B" in client.get("/").content.decode()
    client.force_login(alice)
    act(client, completed, "withdraw")
    completed.refresh_from_db()
    assert completed.visibility == Visibility.HIDDEN
    assert last_event(completed).action == EventAction.WITHDRAWN and last_event(completed).actor == alice
    assert set(LeaderboardRow.objects.filter(submission=completed).values_list("visibility", flat=True)) == {
        Visibility.HIDDEN}
    assert "Alice-7B" not in client.get("/").content.decode()
    assert client.get(f"/api/v1/submissions/{completed.pk}").status_code == 404
    assert client.get(f"/models/{completed.pk}/").status_code == 404
    page = client.get(f"/submissions/{completed.pk}/").content.decode()  # the owner still sees it
    assert "withdrawn from the public leaderboard" in page
    client.force_login(bob)
    assert client.get(f"/submissions/{completed.pk}/").status_code == 404


def test_a_running_submission_cannot_be_withdrawn_only_cancelled(client, alice, version) -> None:
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.RUNNING)
    client.force_login(alice)
    page = act(client, sub, "withdraw", follow=True).content.decode()
    assert "only a completed one can be withdrawn" in page
    assert Submission.objects.get(pk=sub.pk).visibility == Visibility.PUBLIC


def test_the_page_offers_the_owner_only_the_actions_that_apply(client, alice, completed, version) -> None:
    client.force_login(alice)
    page = client.get(f"/submissions/{completed.pk}/").content.decode()
    assert 'value="withdraw"' in page and 'value="cancel"' not in page and 'value="approve"' not in page
    running = make_submission(version=version, submitter=alice, status=SubmissionStatus.RUNNING)
    page = client.get(f"/submissions/{running.pk}/").content.decode()
    assert 'value="cancel"' in page and 'value="withdraw"' not in page


# --- staff ----------------------------------------------------------------------------------------------

def test_staff_approve_a_pending_submission_and_it_is_queued(client, charlie, alice, version,
                                                            django_capture_on_commit_callbacks) -> None:
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.PENDING_REVIEW)
    client.force_login(charlie)
    assert 'value="approve"' in client.get(f"/submissions/{sub.pk}/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        act(client, sub, "approve")
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.QUEUED
    assert TaskRecord.objects.get(task_name="evalworkers.tasks.start_submission").args == [sub.pk]
    assert last_event(sub).actor == charlie and last_event(sub).action == EventAction.APPROVED


def test_staff_reject_with_a_reason_that_the_owner_sees_and_the_public_does_not(client, charlie, alice, version):
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.PENDING_REVIEW)
    client.force_login(charlie)
    page = act(client, sub, "reject", "", follow=True).content.decode()
    assert "Give the submitter a reason" in page
    act(client, sub, "reject", "This model is a renamed copy of #3.")
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.REJECTED and sub.failure_reason == "This model is a renamed copy of #3."
    client.force_login(alice)
    assert "renamed copy of #3" in client.get(f"/submissions/{sub.pk}/").content.decode()
    client.logout()
    page = client.get(f"/submissions/{sub.pk}/").content.decode()
    assert "A maintainer rejected it." in page and "renamed copy" not in page


def test_staff_rerun_a_failed_submission(client, charlie, alice, version, django_capture_on_commit_callbacks):
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.FAILED,
                          failure_reason="probe failed")
    client.force_login(charlie)
    with django_capture_on_commit_callbacks(execute=True):
        page = act(client, sub, "rerun", follow=True).content.decode()
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.QUEUED and sub.run_number == 2 and sub.failure_reason == ""
    assert "API key was erased" in page and last_event(sub).action == EventAction.RERUN


def test_staff_flag_with_a_public_note_that_everyone_sees(client, charlie, completed) -> None:
    client.force_login(charlie)
    page = act(client, completed, "flag", "", follow=True).content.decode()
    assert "needs a public note" in page
    act(client, completed, "flag", "Scores depend on a leaked test set.")
    completed.refresh_from_db()
    assert completed.visibility == Visibility.FLAGGED
    client.logout()
    page = client.get(f"/submissions/{completed.pk}/").content.decode()
    assert "Scores depend on a leaked test set." in page and "Flagged by a maintainer" in page


def test_staff_mark_and_unmark_a_baseline_shown_on_the_leaderboard(client, charlie, completed) -> None:
    client.force_login(charlie)
    act(client, completed, "baseline")
    assert LeaderboardRow.objects.get(submission=completed).is_baseline
    assert last_event(completed).action == EventAction.BASELINE
    act(client, completed, "unbaseline")
    assert not LeaderboardRow.objects.get(submission=completed).is_baseline
    assert last_event(completed).action == EventAction.UNBASELINE


def test_staff_hide_and_show_again(client, charlie, completed) -> None:
    client.force_login(charlie)
    act(client, completed, "hide")
    assert Submission.objects.get(pk=completed.pk).visibility == Visibility.HIDDEN
    act(client, completed, "show")
    assert Submission.objects.get(pk=completed.pk).visibility == Visibility.PUBLIC
    assert [e.action for e in completed.events.all()] == [EventAction.HIDDEN, EventAction.SHOWN]


def test_staff_cancel_any_submission(client, charlie, alice, version) -> None:
    sub = make_submission(version=version, submitter=alice, status=SubmissionStatus.RUNNING)
    client.force_login(charlie)
    act(client, sub, "cancel")
    assert Submission.objects.get(pk=sub.pk).status == SubmissionStatus.CANCELLED


def test_every_action_shows_on_the_status_page_with_who_and_when(client, charlie, alice, completed) -> None:
    client.force_login(charlie)
    act(client, completed, "flag", "Check the tokenizer.")
    act(client, completed, "baseline")
    client.force_login(alice)
    act(client, completed, "withdraw")
    page = client.get(f"/submissions/{completed.pk}/").content.decode()
    for line in ("Flagged by charlie: Check the tokenizer.", "Marked baseline by charlie",
                 "Withdrawn by alice"):
        assert line in page
    event = last_event(completed)
    assert event.created_at.strftime("%Y-%m-%d %H:%M:%S") in page


def test_a_note_that_is_too_long_is_refused(client, charlie, completed) -> None:
    client.force_login(charlie)
    page = act(client, completed, "flag", "x" * 2001, follow=True).content.decode()
    assert "Keep the note under 2000 characters" in page
    assert Submission.objects.get(pk=completed.pk).visibility == Visibility.PUBLIC


def test_in_the_admin_visibility_and_baseline_change_only_through_logged_actions(client, charlie, completed) -> None:
    client.force_login(charlie)
    changelist = "/admin/leaderboard/submission/"
    client.post(changelist, {"action": "mark_baseline", "_selected_action": [completed.pk]})
    assert LeaderboardRow.objects.get(submission=completed).is_baseline
    assert last_event(completed).action == EventAction.BASELINE and last_event(completed).actor == charlie
    form = client.get(f"{changelist}{completed.pk}/change/").content.decode()
    assert 'name="is_baseline"' not in form and 'name="visibility"' not in form
