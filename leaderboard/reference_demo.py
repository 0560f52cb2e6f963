"""The first-run demo: the offline reference model on the `smoke` version under a few KV methods and budgets,
queued on the real `gpu` path, so a newcomer sees measured degradation curves without a GPU."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from evalworkers.backends import reference
from leaderboard import moderation
from leaderboard.models import (
    BenchmarkVersion,
    EventAction,
    ModelEntry,
    ModelKind,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
)

DEMO_VERSION = "smoke"
DEMO_METHODS = ["streaming_llm", "snapkv"]  # with the full cache, which every local submission runs
DEMO_BUDGETS = [1.0, 0.25]  # 48 cells: about 12 minutes on two CPU cores, shortest lengths first


@transaction.atomic
def submit(version_slug: str = DEMO_VERSION) -> tuple[Submission, bool]:
    """(the reference model's demo submission, whether it was created now); one per version, never twice."""
    version = BenchmarkVersion.objects.get(slug=version_slug)
    existing = Submission.objects.filter(model__kind=ModelKind.HUGGINGFACE, model__hf_repo=reference.NAME,
                                         version=version).exclude(status__in=[SubmissionStatus.FAILED,
                                                                              SubmissionStatus.CANCELLED]).first()
    if existing is not None:
        return existing, False
    entry, _ = ModelEntry.objects.get_or_create(
        kind=ModelKind.HUGGINGFACE, hf_repo=reference.NAME,
        defaults={"display_name": reference.DISPLAY_NAME, "organisation": "Hugging Face (SmolLM2)",
                  "parameters_b": "0.14", "claimed_context": 8192,
                  "model_card_url": "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct"},
    )
    offered = version.kv_offered()  # only the points the KV registry accepts
    methods = [m for m in DEMO_METHODS if any(b in offered.get(m, []) for b in DEMO_BUDGETS)]
    budgets = [b for b in DEMO_BUDGETS if any(b in offered.get(m, []) for m in methods)]
    sub = Submission.objects.create(model=entry, version=version, kv_methods=methods, kv_budgets=budgets,
                                    status=SubmissionStatus.QUEUED, queued_at=timezone.now())
    SubmissionEvent.objects.create(submission=sub, action=EventAction.SUBMITTED, note="first-run demo")
    moderation.enqueue_start(sub)
    return sub, True
