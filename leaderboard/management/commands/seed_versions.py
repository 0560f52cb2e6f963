from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from leaderboard.seeding import SpecFileError, seed_versions


class Command(BaseCommand):
    help = "Create the benchmark versions described in the spec file (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, default=settings.SPEC_FILE, help="Spec file (JSON).")

    def handle(self, *args: object, **options: object) -> None:
        try:
            outcomes = seed_versions(options["file"])  # type: ignore[arg-type]
        except SpecFileError as exc:
            raise CommandError(str(exc)) from None
        conflicts = 0
        for outcome in outcomes:
            line = f"{outcome.slug}: {outcome.action}" + (f" ({outcome.detail})" if outcome.detail else "")
            if outcome.action == "conflict":
                conflicts += 1
                self.stderr.write(self.style.WARNING(line))
            else:
                self.stdout.write(line)
        if conflicts:
            raise CommandError(f"{conflicts} version(s) in the spec file disagree with the database; nothing changed.")
