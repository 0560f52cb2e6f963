from leaderboard.models.accounts import VerifiedAddress
from leaderboard.models.board import BoardSnapshot, LeaderboardRow
from leaderboard.models.reported import ReportedResult
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
    EffectiveLengthRule,
    FrozenVersionError,
    TaskCategory,
    TaskSpec,
    VersionOrigin,
    VersionStatus,
)
from leaderboard.models.workers import TaskRecord, TaskState, WorkerHeartbeat

__all__ = [
    "KNOWN_KV_METHODS",
    "ApiMode",
    "BenchmarkVersion",
    "BoardSnapshot",
    "Cell",
    "CellSizing",
    "CellStatus",
    "CiMethod",
    "EffectiveLengthRule",
    "EventAction",
    "FrozenVersionError",
    "LeaderboardRow",
    "ModelEntry",
    "ModelKind",
    "ReportedResult",
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
    "VersionOrigin",
    "VersionStatus",
    "Visibility",
    "WorkerHeartbeat",
]
