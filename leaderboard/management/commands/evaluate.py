"""Run the evaluation of an endpoint synchronously, without the queue and without storing anything."""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evalworkers.backends import CircuitBreaker, EndpointBackend, probe
from evalworkers.benchmark import CalibratedCounter, RenderOptions
from evalworkers.evaluation import CellSpec, evaluate_samples, summarize
from evalworkers.runner import DEFAULT_CHARS_PER_TOKEN, engine_config
from leaderboard.models import BenchmarkVersion


def _int_list(name: str, raw: str) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"{name} takes comma-separated whole numbers, e.g. 4096,8192; got {raw!r}.") from None
    if not values or any(v <= 0 for v in values):
        raise CommandError(f"{name} takes positive token counts; got {raw!r}.")
    return values


class Command(BaseCommand):
    help = ("Evaluate an OpenAI-compatible endpoint on a benchmark version now, in this process, storing nothing "
            "(to check an endpoint before submitting it).")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object) -> CommandParser:
        # Our --version names the benchmark version; it replaces Django's --version (which prints Django's).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", required=True, help="Base URL, e.g. http://127.0.0.1:8001/v1")
        parser.add_argument("--model", required=True, help="Model name the endpoint serves.")
        parser.add_argument("--api-key-env", help="Name of the environment variable holding the API key.")
        parser.add_argument("--mode", choices=["chat", "completions"], default="chat")
        parser.add_argument("--version", dest="version_slug", required=True,
                            help="Benchmark version slug, e.g. smoke.")
        parser.add_argument("--tasks", help="Comma-separated task keys (default: all of the version's).")
        parser.add_argument("--lengths", help="Comma-separated lengths (default: all of the version's).")
        parser.add_argument("--limit", type=int, help="Samples per cell (default: the version's).")
        parser.add_argument("--json", action="store_true", help="Print a JSON list of cell objects.")

    def handle(self, *args: object, **opts: object) -> None:
        version = BenchmarkVersion.objects.browsable().filter(slug=opts["version_slug"]).first()
        if version is None:
            known = ", ".join(BenchmarkVersion.objects.browsable().values_list("slug", flat=True)) or "none"
            raise CommandError(f"--version {opts['version_slug']!r} is not a published version; known: {known}.")
        tasks = list(version.tasks.all())
        if opts["tasks"]:
            wanted = [t.strip() for t in str(opts["tasks"]).split(",") if t.strip()]
            unknown = sorted(set(wanted) - {t.key for t in tasks})
            if unknown:
                raise CommandError(f"--tasks: {', '.join(unknown)} not in {version.slug}; "
                                   f"choose from {', '.join(t.key for t in tasks)}.")
            tasks = [t for t in tasks if t.key in wanted]
        lengths = _int_list("--lengths", str(opts["lengths"])) if opts["lengths"] else list(version.lengths)
        limit = opts["limit"] if opts["limit"] is not None else version.samples_per_cell
        if limit <= 0:
            raise CommandError(f"--limit must be a positive number of samples; got {limit}.")
        api_key = None
        if opts["api_key_env"]:
            api_key = os.environ.get(str(opts["api_key_env"]))
            if not api_key:
                raise CommandError(f"--api-key-env: the environment variable {opts['api_key_env']} is not set.")
        try:
            config = engine_config(base_url=str(opts["endpoint"]), model=str(opts["model"]),
                                   api_mode=str(opts["mode"]), api_key=api_key)
        except ValueError as exc:
            raise CommandError(f"--endpoint/--model: {exc}.") from None

        checked = probe(config, required_context=max(lengths), timeout_s=settings.EVAL_PROBE_TIMEOUT_S)
        if not checked.ok:
            raise CommandError(f"The endpoint failed the pre-flight check ({checked.code}): {checked.message}")
        counter = CalibratedCounter(checked.chars_per_token or DEFAULT_CHARS_PER_TOKEN)
        options = RenderOptions.from_version_params(version.params)
        cells = []
        with EndpointBackend(config) as backend:
            for task in tasks:
                for length in lengths:
                    spec = CellSpec(seed=version.seed, task_key=task.key, task_type=task.task_type,
                                    params=task.params, length=length, max_new_tokens=task.max_new_tokens,
                                    samples=limit, api_mode=config.api_mode, options=options)
                    outcomes = evaluate_samples(spec, backend, counter, range(limit),
                                                concurrency=config.concurrency,
                                                breaker=CircuitBreaker(settings.EVAL_BREAKER_THRESHOLD))
                    summary = summarize(outcomes, seed_parts=(version.slug, task.key, length))
                    cells.append({"task": task.key, "length": length, "method": "full", "budget": 1.0,
                                  "score": summary.score, "ci": [summary.ci_low, summary.ci_high], "n": summary.n,
                                  "errors": summary.errors, "prompt_tokens_mean": summary.prompt_tokens_mean,
                                  "prompt_token_mismatch": summary.prompt_token_mismatch,
                                  "top_error": summary.top_error})
                    if not opts["json"]:
                        shown = "-" if summary.score is None else f"{summary.score:6.1f}"
                        self.stdout.write(f"{task.key:<20} {length:>7} tokens  score {shown}  n={summary.n} "
                                          f"errors={summary.errors}")
        if opts["json"]:
            self.stdout.write(json.dumps(cells))
