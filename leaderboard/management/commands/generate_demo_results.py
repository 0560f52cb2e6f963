"""Fill the database with clearly fictional completed submissions (organisation "Demo data"); see
leaderboard/demo_data.py. Running it again replaces the earlier demo rows."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leaderboard.demo_data import DEMO_ORGANISATION, generate
from leaderboard.models import BenchmarkVersion, VersionStatus


class Command(BaseCommand):
    help = (f"Replace the demo entries (organisation {DEMO_ORGANISATION!r}) with COUNT fictional models and their "
            "completed results on a published version, so that the leaderboard pages have data to show.")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object) -> CommandParser:
        # Our --version names the benchmark version; it replaces Django's --version (which prints Django's).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", dest="version_slug", help="Published version slug (default: the default).")
        parser.add_argument("--count", type=int, default=40, help="Number of fictional models (default 40).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed; the same seed gives the same data.")
        parser.add_argument("--samples-per-cell", dest="samples_per_cell", type=int, default=0,
                            help="Per-sample results to store per needle (retrieval) cell (default 0).")

    def handle(self, *args: object, **opts: object) -> None:
        count, seed, samples = int(opts["count"]), int(opts["seed"]), int(opts["samples_per_cell"])
        if count < 1:
            raise CommandError(f"--count must be at least 1; got {count}.")
        if samples < 0:
            raise CommandError(f"--samples-per-cell must be 0 or more; got {samples}.")
        version = self._version(opts["version_slug"])
        started = time.perf_counter()
        summary = generate(version, count, seed, samples, progress=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"{summary.line()} in {time.perf_counter() - started:.1f}s."))

    @staticmethod
    def _version(slug: object) -> BenchmarkVersion:
        published = BenchmarkVersion.objects.filter(status=VersionStatus.PUBLISHED)
        known = ", ".join(published.order_by("slug").values_list("slug", flat=True)) or "none"
        if slug is None:
            version = published.default()
            if version is None:
                raise CommandError(f"--version: there is no default version; pass one of: {known} "
                                   "(run seed_versions first if there are none).")
            return version
        version = BenchmarkVersion.objects.filter(slug=str(slug)).first()
        if version is None:
            raise CommandError(f"--version {slug!r} does not exist; published versions: {known}.")
        if version.status != VersionStatus.PUBLISHED:
            raise CommandError(f"--version {slug!r} is {version.status}, not published; published versions: {known}.")
        return version
