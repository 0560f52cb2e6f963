"""Submitters' API keys are encrypted at rest and never shown back."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from leaderboard import crypto
from leaderboard.models import Submission
from tests.factories import make_submission

SECRET = "sk-test-THIS-MUST-NEVER-LEAK-0123456789"


@pytest.mark.django_db
def test_raw_column_does_not_contain_the_key() -> None:
    sub = make_submission(api_key=SECRET)
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM leaderboard_submission WHERE id = %s", [sub.pk])
        (raw,) = cursor.fetchone()
    assert raw and SECRET not in raw
    assert Submission.objects.get(pk=sub.pk).get_api_key() == SECRET


@pytest.mark.django_db
def test_a_rotated_key_list_still_decrypts_old_ciphertext(settings) -> None:
    sub = make_submission(api_key=SECRET)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    assert Submission.objects.get(pk=sub.pk).get_api_key() == SECRET


@pytest.mark.django_db
def test_a_lost_key_gives_an_actionable_error(settings) -> None:
    sub = make_submission(api_key=SECRET)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.UnreadableSecret, match="FIELD_ENCRYPTION_KEY"):
        Submission.objects.get(pk=sub.pk).get_api_key()


@pytest.mark.django_db
def test_admin_pages_never_show_the_key_or_its_ciphertext(client, charlie) -> None:
    sub = make_submission(api_key=SECRET)
    client.force_login(charlie)
    for url in (f"/admin/leaderboard/submission/{sub.pk}/change/", "/admin/leaderboard/submission/"):
        body = client.get(url).content.decode()
        assert SECRET not in body
        assert sub.api_key_encrypted not in body


@pytest.mark.django_db
def test_ending_a_submission_erases_the_key(charlie) -> None:
    from leaderboard import moderation

    sub = make_submission(api_key=SECRET)
    moderation.cancel(sub, charlie)
    sub.refresh_from_db()
    assert sub.api_key_encrypted == "" and sub.get_api_key() is None
