"""Creating a submission from the web form: verification, the quota, duplicate detection, and the first status.

Kept apart from the form and the view so the rules are plain functions with plain tests, and so the final
checks run again inside the transaction that creates the rows (two browser tabs must not beat the quota).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from evalworkers.backends.wire import api_root
from leaderboard import moderation, verification
from leaderboard.models import (
    BenchmarkVersion,
    EventAction,
    ModelEntry,
    ModelKind,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
    Visibility,
)

#: Statuses that use up quota: everything but a failure or a cancellation (which cost the submitter nothing).
QUOTA_EXCLUDED = (SubmissionStatus.FAILED, SubmissionStatus.CANCELLED)
DEFAULT_REVISION = "main"
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


def normalize_endpoint(url: str) -> str:
    """One spelling per endpoint: scheme and host lower-cased, default port dropped, the API root (/v1)."""
    parts = urlsplit(api_root(url))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path, "", ""))


def _same_config(req: SubmissionRequest) -> QuerySet[Submission]:
    candidates = Submission.objects.filter(version=req.version, model__kind=req.kind).filter(
        status__in=(*SubmissionStatus.active(), SubmissionStatus.COMPLETED)
    ).exclude(visibility=Visibility.HIDDEN).select_related("model")
    if req.kind == ModelKind.ENDPOINT:
        return candidates.filter(model__api_model_name=req.api_model_name, model__api_mode=req.api_mode)
    return candidates.filter(model__hf_repo__iexact=req.hf_repo,
                             model__hf_revision=req.hf_revision or DEFAULT_REVISION)


def find_duplicate(req: SubmissionRequest) -> Submission | None:
    """An active or completed (and not withdrawn) submission of the same model, version and configuration."""
    if req.kind == ModelKind.ENDPOINT:
        wanted = normalize_endpoint(req.endpoint_url)
        return next((s for s in _same_config(req) if normalize_endpoint(s.model.endpoint_url) == wanted), None)
    methods, budgets = sorted(req.kv_methods), sorted(float(b) for b in req.kv_budgets)
    return next((s for s in _same_config(req)
                 if sorted(s.kv_methods) == methods and sorted(float(b) for b in s.kv_budgets) == budgets), None)


def needs_review(user: AbstractBaseUser, kind: str) -> bool:
    if user.is_staff:
        return False
    return settings.REQUIRE_APPROVAL or (kind == ModelKind.HUGGINGFACE and settings.LOCAL_MODELS_REQUIRE_APPROVAL)


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
    existing = find_duplicate(req)
    if existing is not None:
        raise SubmissionRefused(
            f"This {'endpoint and model' if req.kind == ModelKind.ENDPOINT else 'model and KV configuration'} "
            f"is already {existing.get_status_display().lower()} on {req.version.slug} (submission "
            f"#{existing.pk}); see it instead of submitting it again.",
            field="endpoint_url" if req.kind == ModelKind.ENDPOINT else "hf_repo", existing=existing,
        )
    local = req.kind == ModelKind.HUGGINGFACE
    entry = ModelEntry.objects.create(
        display_name=req.display_name, organisation=req.organisation, kind=req.kind,
        endpoint_url="" if local else req.endpoint_url, api_model_name="" if local else req.api_model_name,
        api_mode=req.api_mode, tokenizer_hint=req.tokenizer_hint,
        hf_repo=req.hf_repo if local else "", hf_revision=(req.hf_revision or DEFAULT_REVISION) if local else "",
        parameters_b=req.parameters_b, claimed_context=req.claimed_context, model_card_url=req.model_card_url,
        paper_url=req.paper_url, created_by=user,
    )
    review = needs_review(user, req.kind)
    sub = Submission(
        model=entry, version=req.version, submitter=user, submitter_address=address,
        kv_methods=list(req.kv_methods) if local else [],
        kv_budgets=[float(b) for b in req.kv_budgets] if local else [],
        request_options={} if local else dict(req.request_options),
        status=SubmissionStatus.PENDING_REVIEW if review else SubmissionStatus.QUEUED,
        queued_at=None if review else timezone.now(),
    )
    sub.set_api_key(None if local else (req.api_key or None))
    sub.save()
    SubmissionEvent.objects.create(submission=sub, actor=user, action=EventAction.SUBMITTED,
                                   note="waiting for review" if review else "")
    if not review:
        moderation.enqueue_start(sub)
    return sub
