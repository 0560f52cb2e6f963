from django.apps import AppConfig


class LeaderboardConfig(AppConfig):
    name = "leaderboard"
    verbose_name = "LongCtx leaderboard"

    def ready(self) -> None:
        # Connect the Celery signal handlers that keep TaskRecord current, in web and workers alike.
        from leaderboard import (
            rows,  # noqa: F401  (its signal receiver keeps cached pages honest)
            task_records,  # noqa: F401
        )
