from leaderboard.models.accounts import VerifiedAddress
from leaderboard.models.board import LeaderboardRow
from leaderboard.models.results import Cell, CellSizing, CellStatus, CiMethod, SampleAnswer, SampleResult
from leaderboard.models.submissions import (
    ApiMode,
    EventAction,
    ModelEntry,
    ModelKind,
    Submission,
    SubmissionEvent,
    SubmissionStatus,
    Visibility,
)
from leaderboard.models.versions import (
    KNOWN_KV_METHODS,
    BenchmarkVersion,
    FrozenVersionError,
    TaskCategory,
    TaskSpec,
    VersionStatus,
)
from leaderboard.models.workers import TaskRecord, TaskState, WorkerHeartbeat

__all__ = [
    "KNOWN_KV_METHODS",
    "ApiMode",
    "BenchmarkVersion",
    "Cell",
    "CellSizing",
    "CellStatus",
    "CiMethod",
    "EventAction",
    "FrozenVersionError",
    "LeaderboardRow",
    "ModelEntry",
    "ModelKind",
    "SampleAnswer",
    "SampleResult",
    "Submission",
    "SubmissionEvent",
    "SubmissionStatus",
    "TaskCategory",
    "TaskRecord",
    "TaskSpec",
    "TaskState",
    "VerifiedAddress",
    "VersionStatus",
    "Visibility",
    "WorkerHeartbeat",
]
