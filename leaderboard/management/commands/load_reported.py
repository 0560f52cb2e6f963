"""Load the published tables of external benchmarks (data/reported/) as reported versions; idempotent."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leaderboard.reported import MANIFEST, ReportedFileError, load


class Command(BaseCommand):
    help = ("Load the reported versions described in data/reported/benchmarks.json (each a published table with its "
            "source): a malformed file is refused with its line; loading twice changes nothing.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--manifest", type=Path, default=MANIFEST, help="The manifest (JSON).")
        parser.add_argument("--slug", dest="only", action="append", default=[],
                            help="Load only this slug (repeatable).")

    def handle(self, *args: object, **options: object) -> None:
        try:
            outcomes = load(options["manifest"], only=options["only"] or None)  # type: ignore[arg-type]
        except ReportedFileError as exc:
            raise CommandError(str(exc)) from None
        for outcome in outcomes:
            self.stdout.write(outcome.summary())
