"""Verified submitters: an e-mail address is confirmed through a signed link before the first submission.

The link carries the user's id and the address it was sent to, signed with SECRET_KEY and dated: it stops working
after EMAIL_CONFIRMATION_DAYS, or as soon as the account's address changes. No token is stored. The quota counts
submissions per canonical address (`canonical_address`), so a new account on the same mailbox gets no new quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from leaderboard.models import VerifiedAddress

SALT = "leaderboard.verification.confirm-email"
#: Providers that ignore dots in the local part: one mailbox, many spellings.
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def canonical_address(email: str) -> str:
    """One spelling per mailbox: lower case, without a +tag, without dots where the provider ignores them."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in DOTLESS_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def is_verified(user: AbstractBaseUser) -> bool:
    """Staff need no confirmation; everyone else needs a confirmed address that is still the account's."""
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    return verified_address(user) is not None


def verified_address(user: AbstractBaseUser) -> VerifiedAddress | None:
    record = VerifiedAddress.objects.filter(user=user).first()
    if record is None or record.email.lower() != (user.email or "").lower():
        return None
    return record


def make_token(user: AbstractBaseUser) -> str:
    return signing.dumps({"u": user.pk, "e": user.email}, salt=SALT, compress=True)


def send_confirmation(request: HttpRequest, user: AbstractBaseUser) -> None:
    """Mail the confirmation link to the account's address (printed on the console in development)."""
    link = request.build_absolute_uri(reverse("confirm-email", args=[make_token(user)]))
    context = {"user": user, "link": link, "days": settings.EMAIL_CONFIRMATION_DAYS}
    subject = render_to_string("registration/confirm_email_subject.txt", context).strip()
    body = render_to_string("registration/confirm_email.txt", context)
    send_mail(subject, body, None, [user.email])


class Outcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY = "already"
    EXPIRED = "expired"
    INVALID = "invalid"
    TAKEN = "taken"


@dataclass(frozen=True)
class Confirmation:
    outcome: Outcome
    user: AbstractBaseUser | None = None

    @property
    def message(self) -> str:
        return {
            Outcome.CONFIRMED: "Your e-mail address is confirmed. You can submit a model now.",
            Outcome.ALREADY: "This address was already confirmed.",
            Outcome.EXPIRED: (f"This link is more than {settings.EMAIL_CONFIRMATION_DAYS} days old. Log in and ask "
                              "for a new one on the submission page."),
            Outcome.INVALID: ("This link is not valid (mistyped, or the account's address changed since it was "
                              "sent). Log in and ask for a new one on the submission page."),
            Outcome.TAKEN: ("This mailbox is already confirmed for another account; one mailbox has one submission "
                            "quota. Log in to that account, or give this one another address."),
        }[self.outcome]


def confirm(token: str) -> Confirmation:
    """Check a link's token and record the address as verified for its account."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.EMAIL_CONFIRMATION_DAYS * 86400)
    except signing.SignatureExpired:
        return Confirmation(Outcome.EXPIRED)
    except signing.BadSignature:
        return Confirmation(Outcome.INVALID)
    user = get_user_model().objects.filter(pk=data.get("u")).first()
    if user is None or (user.email or "").lower() != str(data.get("e", "")).lower():
        return Confirmation(Outcome.INVALID)
    if verified_address(user) is not None:
        return Confirmation(Outcome.ALREADY, user)
    canonical = canonical_address(user.email)
    try:
        with transaction.atomic():
            VerifiedAddress.objects.filter(user=user).delete()  # an older address of this account
            VerifiedAddress.objects.create(user=user, email=user.email, canonical=canonical)
    except IntegrityError:
        return Confirmation(Outcome.TAKEN, user)
    return Confirmation(Outcome.CONFIRMED, user)


def quota_address(user: AbstractBaseUser) -> str:
    """The address the quota counts for this user ("" when none is verified)."""
    record = verified_address(user)
    return record.canonical if record is not None else ""

