"""What a submission of each submittable kind of model needs, and when two submissions are the same one.

The web side of a kind (its worker side is an ``evalworkers.targets.Target``): the form's required fields and
its kind-specific check, the duplicate rule, review, and which of the request's fields are kept. The form,
``submitting.find_duplicate`` and ``submitting.create`` ask ``RULES`` instead of branching on the kind; adding a
submittable kind is one class here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db.models import QuerySet

from evalworkers.backends.wire import api_root
from leaderboard.models import ModelKind, Submission

if TYPE_CHECKING:
    from leaderboard.submitting import SubmissionRequest

DEFAULT_REVISION = "main"


def normalize_endpoint(url: str) -> str:
    """One spelling per endpoint: scheme and host lower-cased, default port dropped, the API root (/v1)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(api_root(url))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path, "", ""))


class KindRules(ABC):
    kind: ClassVar[str]
    #: The choice's label on the form.
    label: ClassVar[str]
    #: Form fields this kind needs, and the end of the sentence that says so.
    required_fields: ClassVar[tuple[str, ...]]
    requirement: ClassVar[str]
    #: The form's kind-specific check (a method of ``SubmissionForm``).
    form_check: ClassVar[str]
    #: Where a duplicate is reported, and what is the same in it.
    identity_field: ClassVar[str]
    same_what: ClassVar[str]

    @abstractmethod
    def same_config(self, candidates: QuerySet[Submission], req: SubmissionRequest) -> QuerySet[Submission]:
        """The candidates for the same model on the same version, narrowed in the database."""

    @abstractmethod
    def is_same(self, sub: Submission, req: SubmissionRequest) -> bool:
        """Whether a candidate is the same configuration (what the database cannot compare)."""

    @abstractmethod
    def entry_fields(self, req: SubmissionRequest) -> dict[str, Any]:
        """The ``ModelEntry`` fields this kind keeps (the others stay empty)."""

    @abstractmethod
    def submission_fields(self, req: SubmissionRequest) -> dict[str, Any]:
        """The ``Submission`` fields this kind keeps, and ``api_key`` (None: none is stored)."""

    def needs_review(self) -> bool:
        return settings.REQUIRE_APPROVAL


class EndpointRules(KindRules):
    kind = ModelKind.ENDPOINT
    label = "An OpenAI-compatible endpoint you run"
    required_fields = ("endpoint_url", "api_model_name")
    requirement = "is needed for an endpoint"
    form_check = "_check_endpoint"
    identity_field = "endpoint_url"
    same_what = "endpoint and model"

    def same_config(self, candidates: QuerySet[Submission], req: SubmissionRequest) -> QuerySet[Submission]:
        return candidates.filter(model__api_model_name=req.api_model_name, model__api_mode=req.api_mode)

    def is_same(self, sub: Submission, req: SubmissionRequest) -> bool:
        return normalize_endpoint(sub.model.endpoint_url) == normalize_endpoint(req.endpoint_url)

    def entry_fields(self, req: SubmissionRequest) -> dict[str, Any]:
        return {"endpoint_url": req.endpoint_url, "api_model_name": req.api_model_name}

    def submission_fields(self, req: SubmissionRequest) -> dict[str, Any]:
        return {"request_options": dict(req.request_options), "api_key": req.api_key or None}


class LocalRules(KindRules):
    kind = ModelKind.HUGGINGFACE
    label = "A Hugging Face model for our GPU workers (with KV-cache methods)"
    required_fields = ("hf_repo",)
    requirement = "is needed for a Hugging Face model"
    form_check = "_check_kv"
    identity_field = "hf_repo"
    same_what = "model and KV configuration"

    def same_config(self, candidates: QuerySet[Submission], req: SubmissionRequest) -> QuerySet[Submission]:
        return candidates.filter(model__hf_repo__iexact=req.hf_repo,
                                 model__hf_revision=req.hf_revision or DEFAULT_REVISION)

    def is_same(self, sub: Submission, req: SubmissionRequest) -> bool:
        return (sorted(sub.kv_methods) == sorted(req.kv_methods)
                and sorted(float(b) for b in sub.kv_budgets) == sorted(float(b) for b in req.kv_budgets))

    def entry_fields(self, req: SubmissionRequest) -> dict[str, Any]:
        return {"hf_repo": req.hf_repo, "hf_revision": req.hf_revision or DEFAULT_REVISION}

    def submission_fields(self, req: SubmissionRequest) -> dict[str, Any]:
        return {"kv_methods": [m for m in req.kv_methods if m != "full"],
                "kv_budgets": [float(b) for b in req.kv_budgets], "api_key": None}

    def needs_review(self) -> bool:
        return super().needs_review() or settings.LOCAL_MODELS_REQUIRE_APPROVAL


RULES: dict[str, KindRules] = {rules.kind: rules for rules in (EndpointRules(), LocalRules())}
