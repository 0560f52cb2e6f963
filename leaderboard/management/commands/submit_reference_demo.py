"""Queue the reference model's demo evaluation on the gpu path (idempotent)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leaderboard import cost, reference_demo
from leaderboard.models import BenchmarkVersion


class Command(BaseCommand):
    help = "Queue SmolLM2-135M-Instruct (the offline reference model) on a version, once, through the gpu queue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", dest="version_slug", default=reference_demo.DEMO_VERSION)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def handle(self, *args: object, **opts: object) -> None:
        slug = str(opts["version_slug"])
        if not BenchmarkVersion.objects.filter(slug=slug).exists():
            raise CommandError(f"--version {slug!r} does not exist; run `manage.py seed_versions` first.")
        sub, created = reference_demo.submit(slug)
        state = "queued" if created else f"already there ({sub.get_status_display().lower()})"
        points = cost.grid_for(sub)
        self.stdout.write(f"reference model on {slug}: submission #{sub.pk} {state}; {len(points)} KV points "
                          f"({', '.join(f'{m} {b:g}' for m, b in points)}) x every task and length")
