"""Reported results: figures imported with their source (``manage.py import_results``), never evaluated here."""

from __future__ import annotations

from evalworkers.targets.base import CellRun, GridPoint, Preflight, SubmissionNotRunnable, Target

NOT_EVALUATED = "Reported results are imported, not evaluated."


class ReportedTarget(Target):
    kind = "reported"

    @classmethod
    def for_submission(cls, sub: object) -> ReportedTarget:
        return cls(sub.version)  # type: ignore[attr-defined]

    def preflight(self) -> Preflight:
        raise SubmissionNotRunnable(NOT_EVALUATED)

    def cell_run(self, point: GridPoint) -> CellRun:
        raise SubmissionNotRunnable(NOT_EVALUATED)
