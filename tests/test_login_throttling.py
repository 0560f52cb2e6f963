"""Login throttling (django-axes) on the site's login and the admin's: a lockout per account and per client address
after a few failures, a page that says why and for how long, unlock by time or by staff, every attempt recorded."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db
LOGIN, ADMIN_LOGIN = "/accounts/login/", "/admin/login/?next=/admin/"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Hundreds of logins: a fast hasher keeps the file quick (what is tested is the counting, not the hash)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def attempt(client: Client, url: str, username: str, password: str, address: str = "198.51.100.7"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return client.get("/submissions/").status_code == 200


def test_thirty_wrong_passwords_end_in_a_lockout_that_refuses_even_the_right_one(client, alice, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="axes")
    limit = settings.AXES_FAILURE_LIMIT
    answers = [attempt(client, LOGIN, "alice", f"guess-{i}").status_code for i in range(30)]
    assert answers[:limit - 1] == [200] * (limit - 1)  # the form, with its error
    assert set(answers[limit - 1:]) == {429}
    locked = attempt(client, LOGIN, "alice", "alice-password-1")
    page = locked.content.decode()
    assert locked.status_code == 429 and not logged_in(client)
    assert "Too many failed logins" in page and "alice" in page and "30 minutes" in page
    assert int(locked["Retry-After"]) == 30 * 60
    assert "Locking out" in caplog.text and "alice" in caplog.text  # the security log names the account
    record = AccessAttempt.objects.get(username="alice")
    assert record.ip_address == "198.51.100.7" and record.failures_since_start == limit
    assert AccessFailureLog.objects.filter(username="alice").count() == limit
    assert "alice-password-1" not in record.post_data and "guess-0" not in record.post_data


def test_the_admin_login_locks_a_staff_account_the_same_way(client, charlie) -> None:
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, ADMIN_LOGIN, "charlie", f"guess-{i}")
    locked = attempt(client, ADMIN_LOGIN, "charlie", "charlie-password-1")
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_an_account_is_locked_against_every_address(client, alice) -> None:
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, LOGIN, "alice", "wrong", address=f"203.0.113.{i + 1}")
    assert attempt(Client(), LOGIN, "alice", "alice-password-1", address="192.0.2.99").status_code == 429


def test_an_address_is_locked_for_every_account(client, alice) -> None:
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, LOGIN, f"someone-{i}", "wrong", address="203.0.113.50")
    assert attempt(Client(), LOGIN, "alice", "alice-password-1", address="203.0.113.50").status_code == 429
    other = Client()
    assert attempt(other, LOGIN, "alice", "alice-password-1", address="203.0.113.51").status_code == 302


def test_a_successful_login_resets_the_count_of_failures(client, alice) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        attempt(client, LOGIN, "alice", "wrong")
    assert attempt(client, LOGIN, "alice", "alice-password-1").status_code == 302
    client.post("/accounts/logout/")
    for _ in range(limit - 1):
        assert attempt(client, LOGIN, "alice", "wrong").status_code == 200
    assert attempt(client, LOGIN, "alice", "alice-password-1").status_code == 302


def test_the_lock_ends_after_the_cool_off_time(client, alice) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, LOGIN, "alice", "wrong")
    assert attempt(client, LOGIN, "alice", "alice-password-1").status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time
                                 - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert attempt(client, LOGIN, "alice", "alice-password-1").status_code == 302


def test_staff_unlock_an_account_from_the_admin_or_the_command_line(client, alice, charlie) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, LOGIN, "alice", "wrong", address="198.51.100.1")
    staff = Client()
    staff.force_login(charlie)
    listing = staff.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "alice" in listing.content.decode()
    record = AccessAttempt.objects.get(username="alice")
    staff.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [record.pk],
                                              "post": "yes"})
    assert not AccessAttempt.objects.exists()
    assert attempt(client, LOGIN, "alice", "alice-password-1", address="198.51.100.1").status_code == 302

    other = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(other, LOGIN, "alice", "wrong", address="198.51.100.2")
    assert attempt(other, LOGIN, "alice", "alice-password-1", address="198.51.100.2").status_code == 429
    call_command("axes_reset_username", "alice")
    call_command("axes_reset_ip", "198.51.100.2")
    assert attempt(other, LOGIN, "alice", "alice-password-1", address="198.51.100.2").status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_client_is_locked_not_the_proxy(client, alice, settings) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    for i in range(settings.AXES_FAILURE_LIMIT):
        client.post(LOGIN, {"username": f"someone-{i}", "password": "x"}, REMOTE_ADDR="10.0.0.1",
                    HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.9")  # the first entry is the client's own claim
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}
    fresh = Client()
    ok = fresh.post(LOGIN, {"username": "alice", "password": "alice-password-1"}, REMOTE_ADDR="10.0.0.1",
                    HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert ok.status_code == 302  # another client behind the same proxy is not locked
