"""Creating a submission from the web form: verification, the quota, duplicate detection, and the first status.

Kept apart from the form and the view so the rules are plain functions with plain tests, and so the final
checks run again inside the transaction that creates the rows (two browser tabs must not beat the quota).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from leaderboard import moderation, verification
from leaderboard.models import (
    BenchmarkVersion,
    EventAction,
    ModelEntry,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
    Visibility,
)
from leaderboard.submission_kinds import RULES

#: Statuses that use up quota: everything but a failure or a cancellation (which cost the submitter nothing).
QUOTA_EXCLUDED = (SubmissionStatus.FAILED, SubmissionStatus.CANCELLED)
UNVERIFIED = ("Confirm your e-mail address before your first submission: open the link we sent to it (ask for a new "
              "one below if it did not arrive or has expired).")


@dataclass(frozen=True)
class Quota:
    limit: int
    days: int
    used: int
    next_allowed_at: datetime | None  # when a slot frees up, if none is free now
    unlimited: bool = False

    @property
    def allows(self) -> bool:
        return self.unlimited or self.used < self.limit

    @property
    def remaining(self) -> int | None:
        return None if self.unlimited else max(0, self.limit - self.used)

    def refusal(self) -> str:
        if self.limit == 0:
            return "Submitting is closed on this deployment for now; contact the maintainers."
        when = self.next_allowed_at.strftime("%Y-%m-%d %H:%M UTC") if self.next_allowed_at else "later"
        return (f"You have used your quota of {self.limit} submission{'s' if self.limit != 1 else ''} per "
                f"{self.days} days (failed and cancelled ones do not count). You can submit again on {when}.")


def quota_for(user: AbstractBaseUser, now: datetime | None = None) -> Quota:
    """The quota of the user's verified mailbox: submissions made from it by any account count, as do the user's
    own from before it was verified."""
    limit, days = settings.SUBMISSION_QUOTA, settings.SUBMISSION_QUOTA_DAYS
    if user.is_staff:
        return Quota(limit, days, 0, None, unlimited=True)
    now = now or timezone.now()
    since = now - timedelta(days=days)
    address = verification.quota_address(user)
    mine = Q(submitter=user) | Q(submitter_address=address) if address else Q(submitter=user)
    counted = list(
        Submission.objects.filter(mine, created_at__gte=since).exclude(status__in=QUOTA_EXCLUDED)
        .order_by("created_at").values_list("created_at", flat=True)
    )
    next_at = None
    if limit and len(counted) >= limit:
        next_at = counted[len(counted) - limit] + timedelta(days=days)
    return Quota(limit, days, len(counted), next_at)


@dataclass(frozen=True)
class SubmissionRequest:
    """What the form collected, cleaned. The API key travels only here, on its way to being encrypted."""

    kind: str
    display_name: str
    version: BenchmarkVersion
    claimed_context: int
    organisation: str = ""
    endpoint_url: str = ""
    api_mode: str = "chat"
    api_model_name: str = ""
    api_key: str = field(default="", repr=False)
    tokenizer_hint: str = ""
    parameters_b: object = None
    model_card_url: str = ""
    paper_url: str = ""
    hf_repo: str = ""
    hf_revision: str = ""
    kv_methods: tuple[str, ...] = ()
    kv_budgets: tuple[float, ...] = ()
    request_options: dict = field(default_factory=dict)  # validated by evalworkers.backends.options


class SubmissionRefused(Exception):
    """The rules refuse this submission; ``field`` is the form field to attach the message to (None: the form)."""

    def __init__(self, message: str, *, field: str | None = None, existing: Submission | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.existing = existing


def find_duplicate(req: SubmissionRequest) -> Submission | None:
    """An active or completed (and not withdrawn) submission of the same model, version and configuration
    (``submission_kinds``: what "the same" is for each kind)."""
    rules = RULES[req.kind]
    candidates = Submission.objects.filter(version=req.version, model__kind=req.kind).filter(
        status__in=(*SubmissionStatus.active(), SubmissionStatus.COMPLETED)
    ).exclude(visibility=Visibility.HIDDEN).select_related("model")
    return next((s for s in rules.same_config(candidates, req) if rules.is_same(s, req)), None)


def needs_review(user: AbstractBaseUser, kind: str) -> bool:
    return not user.is_staff and RULES[kind].needs_review()


@sensitive_variables("req")
@transaction.atomic
def create(user: AbstractBaseUser, req: SubmissionRequest) -> Submission:
    """Check verification, quota and duplicates under locks, create the entry and the submission, queue it (or
    hold it)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()  # one submission per user at a time
    BenchmarkVersion.objects.select_for_update().filter(pk=req.version.pk).first()  # and per version
    if req.version.is_reported:
        raise SubmissionRefused(
            f"{req.version.slug} holds {req.version.benchmark_name or 'an external benchmark'}'s published results, "
            "reported by the benchmark's authors and not measured here: it takes no submissions. Choose a version "
            "that is measured here.", field="version")
    if not verification.is_verified(user):
        raise SubmissionRefused(UNVERIFIED)
    address = verification.quota_address(user)
    quota = quota_for(user)
    if not quota.allows:
        raise SubmissionRefused(quota.refusal())
    rules = RULES[req.kind]
    existing = find_duplicate(req)
    if existing is not None:
        raise SubmissionRefused(
            f"This {rules.same_what} is already {existing.get_status_display().lower()} on {req.version.slug} "
            f"(submission #{existing.pk}); see it instead of submitting it again.",
            field=rules.identity_field, existing=existing,
        )
    entry = ModelEntry.objects.create(
        display_name=req.display_name, organisation=req.organisation, kind=req.kind, api_mode=req.api_mode,
        tokenizer_hint=req.tokenizer_hint, parameters_b=req.parameters_b, claimed_context=req.claimed_context,
        model_card_url=req.model_card_url, paper_url=req.paper_url, created_by=user, **rules.entry_fields(req),
    )
    review = needs_review(user, req.kind)
    kept = rules.submission_fields(req)
    api_key = kept.pop("api_key")
    sub = Submission(
        model=entry, version=req.version, submitter=user, submitter_address=address,
        status=SubmissionStatus.PENDING_REVIEW if review else SubmissionStatus.QUEUED,
        queued_at=None if review else timezone.now(), **kept,
    )
    sub.set_api_key(api_key)
    sub.save()
    SubmissionEvent.objects.create(submission=sub, actor=user, action=EventAction.SUBMITTED,
                                   note="waiting for review" if review else "")
    if not review:
        moderation.enqueue_start(sub)
    return sub
