"""What every kind of model has in common on its way through the runner, and the one way to build a cell's spec.

A ``Target`` owns what differs between kinds of model (endpoint, local Hugging Face model, reported results):
its pre-flight check, its grid of (method, budget) points, its backend with the token counter that sizes prompts,
how many samples run at once, and the queue its work runs on. The runner, the Celery tasks and
``manage.py evaluate`` ask the target and never branch on the kind.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from evalworkers import prompt_sizing
from evalworkers.evaluation import CellSpec
from evalworkers.kv.registry import FULL_CACHE, GridPoint


class SubmissionNotRunnable(Exception):
    """The submission (or one of its cells) cannot run; the message is shown to the submitter as it is.

    ``preflight`` carries what the check learned before it refused (kept on the submission), if anything."""

    def __init__(self, message: str, preflight: Preflight | None = None) -> None:
        super().__init__(message)
        self.preflight = preflight


@dataclass(frozen=True)
class Preflight:
    """What the pre-flight check found, kept on the submission: ``facts`` (``Submission.probe_result``: the probe's
    findings or the loaded model's description, with a ``message`` for the page) and the endpoint's learned
    ``dialect`` (``Submission.dialect``; empty for other kinds)."""

    facts: dict[str, Any]
    dialect: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellRun:
    """How one cell runs: its ``backend`` (a context manager that closes it), how prompts are sized for it
    (``sizing``) and how many samples are in flight at once (``concurrency``)."""

    backend: contextlib.AbstractContextManager
    sizing: prompt_sizing.Sizing
    concurrency: int


def spec_for(version: Any, task: Any, length: int, *, samples: int | None = None, api_mode: str = "chat") -> CellSpec:
    """The one way to describe a cell's samples: the version's seed and rendering, the task's parameters, the
    length in tokens (prompt plus the task's new tokens), ``samples`` samples (default: the version's
    ``samples_per_cell``). The same (version, task, length, index) gives the same sample in a worker and in
    ``manage.py evaluate``."""
    return CellSpec(
        seed=version.seed, task_key=task.key, task_type=task.task_type, params=task.params, length=length,
        max_new_tokens=task.max_new_tokens, samples=version.samples_per_cell if samples is None else samples,
        api_mode=api_mode, options=version.render_options,
    )


class Target(ABC):
    """One kind of model on one benchmark version (``version``, a ``BenchmarkVersion``), over ``lengths``
    (token counts; default: the version's)."""

    #: The ``ModelKind`` value this class serves.
    kind: ClassVar[str]

    def __init__(self, version: Any, *, lengths: Sequence[int] | None = None) -> None:
        self.version = version
        self.lengths = list(lengths if lengths is not None else version.lengths)

    @property
    def queue(self) -> str:
        """The Celery queue this kind's tasks run on (``ModelKind.queue``)."""
        from leaderboard.models import ModelKind

        return ModelKind(self.kind).queue

    @property
    def api_mode(self) -> str:
        return "chat"

    def points(self) -> list[GridPoint]:
        """The (method, budget) points every task and length runs at: the full cache, as served."""
        return [FULL_CACHE]

    @abstractmethod
    def preflight(self) -> Preflight:
        """Check that the model can run this version before any cell exists; raises SubmissionNotRunnable
        with a message the submitter can act on."""

    @abstractmethod
    def cell_run(self, point: GridPoint) -> CellRun:
        """The backend, sizing and concurrency for cells at ``point``; raises SubmissionNotRunnable."""

    def spec(self, task: Any, length: int, *, samples: int | None = None) -> CellSpec:
        return spec_for(self.version, task, length, samples=samples, api_mode=self.api_mode)
