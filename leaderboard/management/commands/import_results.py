"""Import externally reported results (lm-evaluation-harness JSON or model,task,length,score CSV)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leaderboard import importing
from leaderboard.models import BenchmarkVersion


class Command(BaseCommand):
    help = "Import reported results; they are marked 'reported' on the leaderboard. Nothing is saved on an error."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object) -> CommandParser:
        # Our --version names the benchmark version; it replaces Django's --version (which prints Django's).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="A .json (lm-evaluation-harness results) or .csv file.")
        parser.add_argument("--version", dest="version_slug", required=True, help="Benchmark version slug, e.g. v1.")
        parser.add_argument("--model", help="Model name (required for an lm-eval JSON file; CSV rows carry theirs).")
        parser.add_argument("--organisation", default="")
        parser.add_argument("--source", default="", help="Where the numbers come from (shown as the note).")
        parser.add_argument("--skip-unknown", action="store_true",
                            help="Import a file with tasks the version does not know, leaving them out; the row "
                                 "is marked partial. Without it such a file is refused, naming each task.")
        parser.add_argument("--replace", action="store_true",
                            help="Replace an earlier import of the same file, or of the same model on this version.")

    def handle(self, *args: object, **opts: object) -> None:
        version = BenchmarkVersion.objects.browsable().filter(slug=opts["version_slug"]).first()
        if version is None:
            raise CommandError(f"--version {opts['version_slug']!r} is not a published version.")
        path: Path = opts["file"]  # type: ignore[assignment]
        try:
            content = path.read_bytes()
            text = content.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: cannot read it ({exc}).") from None
        skip, replace = bool(opts["skip_unknown"]), bool(opts["replace"])
        try:
            if path.suffix.lower() == ".json":
                if not opts["model"]:
                    raise CommandError("--model is required for an lm-evaluation-harness JSON file.")
                models = [importing.parse_lm_eval(text, version, str(opts["model"]), skip_unknown=skip)]
            elif path.suffix.lower() == ".csv":
                models = importing.parse_csv(text, version, skip_unknown=skip)
            else:
                raise CommandError(f"{path}: use a .json (lm-evaluation-harness) or .csv file.")
            subs = importing.save(models, version, organisation=str(opts["organisation"]),
                                  source=str(opts["source"]), sha256=importing.file_hash(content), replace=replace)
        except importing.ImportFileError as exc:
            raise CommandError(f"{path}: {exc} Nothing was imported.") from None
        for model, sub in zip(models, subs, strict=True):
            skipped = f"; skipped {', '.join(model.skipped)} (row marked partial)" if model.skipped else ""
            self.stdout.write(f"{model.name}: {len(model.scores)} scores -> submission #{sub.pk} (reported){skipped}")
