"""Verified submitters: an address confirmed by a signed link before the first submission, the quota counted per
mailbox, and sign-up and submission rate-limited per client address with the reason on the form."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.test import Client

from leaderboard import verification
from leaderboard.models import Submission, VerifiedAddress
from tests.factories import make_default_version, submission_post

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-unusual-password-42"


@pytest.fixture
def version():
    return make_default_version("t1")


def sign_up(client: Client, username: str = "dana", email: str = "dana@example.org", address: str = "198.51.100.4"):
    return client.post("/accounts/signup/", {"username": username, "email": email, "password1": PASSWORD,
                                             "password2": PASSWORD}, REMOTE_ADDR=address)


def link_in(message) -> str:
    return re.search(r"http://testserver(/accounts/confirm/\S+/)", message.body).group(1)


def test_a_submission_is_refused_before_the_address_is_confirmed_and_accepted_after(client, version) -> None:
    assert sign_up(client)["Location"] == "/submit/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dana@example.org"]
    assert mail.outbox[0].subject == "Confirm your e-mail address for LongCtx Leaderboard"
    form_page = client.get("/submit/").content.decode()
    assert "confirm your e-mail address (dana@example.org)" in form_page and "Send the link again" in form_page

    refused = client.post("/submit/", submission_post())
    assert refused.status_code == 403 and not Submission.objects.exists()
    assert "Confirm your e-mail address before your first submission" in refused.content.decode()
    assert 'value="Llama-Test-8B"' in refused.content.decode()  # what was typed is kept

    confirmed = client.get(link_in(mail.outbox[0]))
    assert confirmed.status_code == 200 and "Your e-mail address is confirmed" in confirmed.content.decode()
    accepted = client.post("/submit/", submission_post())
    assert accepted.status_code == 302
    sub = Submission.objects.get()
    assert sub.submitter.username == "dana" and sub.submitter_address == "dana@example.org"


def test_a_link_is_refused_when_tampered_with_expired_or_for_an_old_address(client, settings) -> None:
    sign_up(client)
    dana = get_user_model().objects.get(username="dana")
    link = link_in(mail.outbox[0])
    assert client.get(link.replace("/confirm/", "/confirm/x")).status_code == 400
    settings.EMAIL_CONFIRMATION_DAYS = 0  # every link is older than zero days
    expired = client.get(link)
    assert expired.status_code == 400 and "days old" in expired.content.decode()
    settings.EMAIL_CONFIRMATION_DAYS = 3
    dana.email = "dana@elsewhere.example"
    dana.save()
    assert client.get(link).status_code == 400  # sent to the old address
    assert not VerifiedAddress.objects.exists() and not verification.is_verified(dana)


def test_the_quota_counts_per_mailbox_so_a_second_account_gains_nothing(client, version, settings) -> None:
    settings.SUBMISSION_QUOTA = 1
    sign_up(client, email="Dana.Smith+first@gmail.com")
    client.get(link_in(mail.outbox[0]))
    assert client.post("/submit/", submission_post())["Location"].startswith("/submissions/")
    again = client.post("/submit/", submission_post(display_name="Another", api_model_name="another"))
    assert again.status_code == 400 and "quota of 1 submission" in again.content.decode()

    # Signing up again with the same mailbox spelled differently is refused...
    other = Client()
    refused = sign_up(other, username="dana2", email="danasmith+second@googlemail.com")
    assert "exists" in refused.context["form"].errors["email"][0]
    # ...and a mailbox confirmed for one account cannot be confirmed for another.
    dana = get_user_model().objects.get(username="dana")
    twin = get_user_model().objects.create_user("twin", "DANASMITH@gmail.com", PASSWORD)
    token = signing.dumps({"u": twin.pk, "e": twin.email}, salt=verification.SALT, compress=True)
    taken = other.get(f"/accounts/confirm/{token}/")
    assert taken.status_code == 400 and "another account" in taken.content.decode()
    assert verification.quota_address(dana) == "danasmith@gmail.com"


def test_the_quota_keeps_counting_the_mailbox_after_its_account_is_gone(client, version, settings) -> None:
    settings.SUBMISSION_QUOTA = 1
    sign_up(client)
    client.get(link_in(mail.outbox[0]))
    client.post("/submit/", submission_post())
    get_user_model().objects.filter(username="dana").delete()
    again = Client()
    sign_up(again, username="dana-again")
    again.get(link_in(mail.outbox[1]))
    refused = again.post("/submit/", submission_post(display_name="Another", api_model_name="another"))
    assert refused.status_code == 400 and "quota" in refused.content.decode()


def test_canonical_addresses_fold_case_tags_and_gmail_dots_only() -> None:
    assert verification.canonical_address(" Dana.Smith+x@GMail.com ") == "danasmith@gmail.com"
    assert verification.canonical_address("dana.smith+x@googlemail.com") == "danasmith@gmail.com"
    assert verification.canonical_address("Dana.Smith+x@Example.org") == "dana.smith@example.org"


def test_staff_need_no_confirmation(client, version, charlie) -> None:
    client.force_login(charlie)
    assert client.post("/submit/", submission_post())["Location"].startswith("/submissions/")


def test_the_link_can_be_sent_again_but_not_without_limit(client, settings) -> None:
    sign_up(client)
    limit = settings.CONFIRMATION_MAIL_RATE[0]
    for _ in range(limit):
        assert client.post("/accounts/confirm/", follow=True).status_code == 200
    assert len(mail.outbox) == 1 + limit
    refused = client.post("/accounts/confirm/", follow=True).content.decode()
    assert "A link was sent a moment ago" in refused and len(mail.outbox) == 1 + limit
    client.get(link_in(mail.outbox[-1]))
    assert "already confirmed" in client.post("/accounts/confirm/", follow=True).content.decode()


def test_sign_up_is_rate_limited_per_client_address_and_the_form_says_why(settings) -> None:
    count, seconds = settings.SIGNUP_RATE
    for i in range(count):
        assert sign_up(Client(), username=f"user{i}", email=f"user{i}@example.org").status_code == 302
    refused = sign_up(Client(), username="one-more", email="one-more@example.org")
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= seconds
    assert "Too many accounts were created from your network address" in refused.content.decode()
    assert not get_user_model().objects.filter(username="one-more").exists()
    elsewhere = sign_up(Client(), username="one-more", email="one-more@example.org", address="203.0.113.77")
    assert elsewhere.status_code == 302


def test_an_ipv6_client_is_counted_by_its_64_network(settings) -> None:
    settings.SIGNUP_RATE = (1, 3600)
    assert sign_up(Client(), "six1", "six1@example.org", address="2001:db8:1:2::1").status_code == 302
    assert sign_up(Client(), "six2", "six2@example.org", address="2001:db8:1:2::ffff").status_code == 429
    assert sign_up(Client(), "six3", "six3@example.org", address="2001:db8:1:3::1").status_code == 302


def test_submission_attempts_are_rate_limited_per_client_address(client, alice, version, settings) -> None:
    settings.SUBMIT_RATE = (3, 3600)
    client.force_login(alice)
    for _ in range(3):
        assert client.post("/submit/", submission_post(endpoint_url="not a url")).status_code == 400
    refused = client.post("/submit/", submission_post())
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many submission attempts from your network address" in refused.content.decode()
    assert not Submission.objects.exists()
