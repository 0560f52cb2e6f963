"""One home per kind of model (``Target``): endpoint, local Hugging Face model, reported results.

Adding a kind is one ``Target`` subclass in its own module plus an entry in ``TARGETS``; the runner, the Celery
tasks and ``manage.py evaluate`` ask ``for_submission`` and never branch on the kind.
"""

from __future__ import annotations

from typing import Any

from evalworkers.targets.base import (
    FULL_CACHE,
    CellRun,
    GridPoint,
    Preflight,
    SubmissionNotRunnable,
    Target,
    spec_for,
)
from evalworkers.targets.endpoint import EndpointTarget
from evalworkers.targets.local import LocalTarget
from evalworkers.targets.reported import ReportedTarget

TARGETS: dict[str, type[EndpointTarget] | type[LocalTarget] | type[ReportedTarget]] = {
    cls.kind: cls for cls in (EndpointTarget, LocalTarget, ReportedTarget)
}

__all__ = ["FULL_CACHE", "TARGETS", "CellRun", "EndpointTarget", "GridPoint", "LocalTarget", "Preflight",
           "ReportedTarget", "SubmissionNotRunnable", "Target", "for_submission", "spec_for"]


def for_submission(sub: Any) -> Target:
    """The target for a submission (with its model and version loaded); SubmissionNotRunnable for a kind
    this release does not know."""
    try:
        cls = TARGETS[sub.model.kind]
    except KeyError:
        raise SubmissionNotRunnable(f"This release cannot evaluate models of kind {sub.model.kind!r}.") from None
    return cls.for_submission(sub)
