"""Accounts: sign up, log in, log out, reset a forgotten password by e-mail, change it; CSRF on every POST."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-unusual-password-42"


def signup(client, **overrides):
    data = {"username": "dana", "email": "dana@example.org", "password1": PASSWORD, "password2": PASSWORD}
    data.update(overrides)
    return client.post("/accounts/signup/", data)


def test_signing_up_creates_the_account_logs_in_and_leads_to_the_form(client) -> None:
    response = signup(client)
    assert response.status_code == 302 and response["Location"] == "/submit/"
    user = get_user_model().objects.get(username="dana")
    assert user.email == "dana@example.org" and not user.is_staff and user.check_password(PASSWORD)
    page = client.get("/").content.decode()
    assert "Log out dana" in page and "My submissions" in page


def test_sign_up_goes_back_to_a_local_next_page_but_never_to_another_site(client) -> None:
    assert signup(client, next="/submissions/")["Location"] == "/submissions/"
    other = Client()
    assert signup(other, username="eve", email="eve@example.org",
                  next="https://evil.example.org/")["Location"] == "/submit/"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"password1": "123456", "password2": "123456"}, "password2"),
    ({"password2": "something-else-entirely"}, "password2"),
    ({"email": "not-an-address"}, "email"),
    ({"username": ""}, "username"),
    ({"username": "x" * 151}, "username"),
])
def test_a_bad_sign_up_is_refused_on_the_field_at_fault(client, overrides, field) -> None:
    response = signup(client, **overrides)
    assert response.status_code == 200 and field in response.context["form"].errors
    assert not get_user_model().objects.filter(username="dana").exists()


def test_one_e_mail_address_cannot_open_two_accounts(client, alice) -> None:
    response = signup(client, email="ALICE@example.org")
    assert "exists" in response.context["form"].errors["email"][0]


def test_logging_in_and_out(client, alice) -> None:
    page = client.get("/accounts/login/").content.decode()
    assert "Sign up" in page and "Reset it by e-mail" in page
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302 and response["Location"] == "/submissions/"
    assert client.get("/submissions/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405  # logging out takes a POST (with its CSRF token)
    assert client.post("/accounts/logout/")["Location"] == "/"
    assert client.get("/submissions/").status_code == 302


def test_a_wrong_password_is_refused(client, alice) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200 and response.context["form"].errors


def test_a_forgotten_password_is_reset_through_the_link_sent_by_e_mail(client, alice) -> None:
    response = client.post("/accounts/password_reset/", {"email": "alice@example.org"})
    assert response["Location"] == "/accounts/password_reset/done/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.org"]
    assert mail.outbox[0].subject == "Reset your LongCtx Leaderboard password"
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.context["validlink"]
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": "brand-new-passphrase-7", "new_password2": "brand-new-passphrase-7"})
    assert done["Location"] == "/accounts/reset/done/"
    alice.refresh_from_db()
    assert alice.check_password("brand-new-passphrase-7")
    assert not client.get(link, follow=True).context["validlink"]  # the link works once


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client) -> None:
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.org"})
    assert response["Location"] == "/accounts/password_reset/done/" and mail.outbox == []


def test_the_default_mail_backend_prints_to_the_console() -> None:
    from config import settings as project_settings

    assert project_settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"


def test_a_logged_in_user_changes_the_password(client, alice) -> None:
    client.force_login(alice)
    response = client.post("/accounts/password_change/", {
        "old_password": "alice-password-1", "new_password1": "another-long-secret-9",
        "new_password2": "another-long-secret-9"})
    assert response["Location"] == "/accounts/password_change/done/"
    alice.refresh_from_db()
    assert alice.check_password("another-long-secret-9")


# --- CSRF: every form that changes something refuses a POST without the token ---------------------------

def csrf_posts(sub_id: int) -> list[tuple[str, dict]]:
    return [
        ("/accounts/signup/", {"username": "x", "email": "x@example.org", "password1": PASSWORD,
                               "password2": PASSWORD}),
        ("/accounts/login/", {"username": "alice", "password": "alice-password-1"}),
        ("/accounts/logout/", {}),
        ("/accounts/password_reset/", {"email": "alice@example.org"}),
        ("/accounts/password_change/", {"old_password": "alice-password-1", "new_password1": PASSWORD,
                                        "new_password2": PASSWORD}),
        ("/submit/", {}),
        (f"/submissions/{sub_id}/actions", {"action": "cancel"}),
    ]


CSRF_URLS = [url for url, _ in csrf_posts(0)]


@pytest.mark.parametrize("index", range(len(CSRF_URLS)), ids=CSRF_URLS)
def test_every_post_without_a_csrf_token_is_refused(alice, index) -> None:
    from leaderboard.models import SubmissionStatus
    from tests.factories import make_submission

    sub = make_submission(submitter=alice, status=SubmissionStatus.QUEUED)
    url, data = csrf_posts(sub.pk)[index]
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(url, data).status_code == 403
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.QUEUED


def test_a_post_with_the_token_from_the_page_goes_through(alice) -> None:
    from leaderboard.models import SubmissionStatus
    from tests.factories import make_submission

    sub = make_submission(submitter=alice, status=SubmissionStatus.QUEUED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get(f"/submissions/{sub.pk}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(f"/submissions/{sub.pk}/actions", {"action": "cancel", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.CANCELLED
