from django.apps import AppConfig


class EvalworkersConfig(AppConfig):
    """The worker package as a Django app only for its management commands (``evaluate``, ``serve_model``):
    it has no models; the web app (``leaderboard``) owns the database."""

    name = "evalworkers"
    verbose_name = "Evaluation workers"
