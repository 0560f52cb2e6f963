"""Run an evaluation synchronously (an endpoint, or a local model under KV methods), storing nothing."""

from __future__ import annotations

import dataclasses
import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection

from evalworkers import prompt_sizing
from evalworkers.backends import CircuitBreaker
from evalworkers.backends.options import OptionsError, describe_allowed, validate_request_options
from evalworkers.benchmark import CalibratedCounter, min_length
from evalworkers.evaluation import CellSummary, evaluate_cell, summarize
from evalworkers.kv import registry
from evalworkers.targets import EndpointTarget, GridPoint, LocalTarget, SubmissionNotRunnable, Target
from evalworkers.targets.endpoint import DEFAULT_CHARS_PER_TOKEN, engine_config
from evalworkers.targets.local import config_for, query_aware
from leaderboard.models import BenchmarkVersion, TaskSpec


def _int_list(name: str, raw: str) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"{name} takes comma-separated whole numbers, e.g. 4096,8192; got {raw!r}.") from None
    if not values or any(v <= 0 for v in values):
        raise CommandError(f"{name} takes positive token counts; got {raw!r}.")
    return values


def _budget_list(raw: str) -> list[float]:
    try:
        values = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--budgets takes comma-separated fractions, e.g. 1.0,0.5,0.25; got {raw!r}.") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise CommandError(f"--budgets takes fractions in (0, 1]; got {raw!r}.")
    return values


def answer_fields(summary: CellSummary) -> dict:
    """Per cell: how samples stopped (stop / length / other) and how many replies had no final answer."""
    return {"finish_reasons": summary.finish_reasons, "no_final_answer": summary.no_final_answer,
            "reasoning_chars_mean": summary.reasoning_chars_mean}


def _request_options(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        return validate_request_options(json.loads(raw))
    except ValueError as exc:
        problems = exc.problems if isinstance(exc, OptionsError) else [f"not valid JSON ({exc})"]
        raise CommandError(f"--request-options: {' '.join(problems)}") from None


class Command(BaseCommand):
    help = ("Evaluate an OpenAI-compatible endpoint on a benchmark version now, in this process, storing nothing "
            "(to check an endpoint before submitting it).")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object) -> CommandParser:
        # Our --version names the benchmark version; it replaces Django's --version (which prints Django's).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--endpoint", help="Base URL, e.g. http://127.0.0.1:8001/v1")
        target.add_argument("--local", help="A local model: 'reference', a model folder, a .gguf file or a "
                                            "Hugging Face repo id in the local cache.")
        parser.add_argument("--model", help="Model name the endpoint serves (with --endpoint).")
        parser.add_argument("--revision", help="Hugging Face revision (with --local and a repo id).")
        parser.add_argument("--methods", default="full",
                            help="Comma-separated KV methods (with --local), e.g. full,snapkv,streaming_llm; "
                                 "the full cache always runs too, as the baseline.")
        parser.add_argument("--budgets", default="1.0",
                            help="Comma-separated KV budgets (with --local), e.g. 1.0,0.5,0.25.")
        parser.add_argument("--api-key-env", help="Name of the environment variable holding the API key.")
        parser.add_argument("--mode", choices=["chat", "completions"], default="chat")
        parser.add_argument("--version", dest="version_slug", required=True,
                            help="Benchmark version slug, e.g. smoke.")
        parser.add_argument("--tasks", help="Comma-separated task keys (default: all of the version's).")
        parser.add_argument("--lengths", help="Comma-separated lengths (default: all of the version's).")
        parser.add_argument("--limit", type=int, help="Samples per cell (default: the version's).")
        parser.add_argument("--json", action="store_true", help="Print a JSON list of cell objects.")
        parser.add_argument("--request-options", help="A JSON object of extra request fields (with --endpoint); "
                                                       f"allowed: {describe_allowed()}.")
        parser.add_argument("--tokenizer-hint", help="A Hugging Face tokenizer available on this machine that the "
                                                     "endpoint's model uses (sizes prompts exactly).")
        parser.add_argument("--concurrency", type=int, help="Requests in flight at once (with --endpoint; default: "
                                                            "EVAL_CONCURRENCY).")

    def handle(self, *args: object, **opts: object) -> None:
        try:
            version = BenchmarkVersion.objects.browsable().filter(slug=opts["version_slug"]).first()
            known = "" if version else ", ".join(BenchmarkVersion.objects.browsable().values_list("slug", flat=True))
        except DatabaseError:
            raise CommandError(f"The database {connection.settings_dict['NAME']} has no benchmark tables yet: run "
                               "`make run` once, or `manage.py migrate` then `manage.py seed_versions`.") from None
        if version is None:
            hint = known or "none (seed them with `manage.py seed_versions`)"
            raise CommandError(f"--version {opts['version_slug']!r} is not a published version; known: {hint}.")
        tasks = list(version.tasks.all())
        if opts["tasks"]:
            wanted = [t.strip() for t in str(opts["tasks"]).split(",") if t.strip()]
            unknown = sorted(set(wanted) - {t.key for t in tasks})
            if unknown:
                raise CommandError(f"--tasks: {', '.join(unknown)} not in {version.slug}; "
                                   f"choose from {', '.join(t.key for t in tasks)}.")
            tasks = [t for t in tasks if t.key in wanted]
        lengths = _int_list("--lengths", str(opts["lengths"])) if opts["lengths"] else list(version.lengths)
        too_short = [f"{t.key} needs at least {need:,} tokens" for t in tasks
                     if (need := min_length(t.task_type, t.params, CalibratedCounter(DEFAULT_CHARS_PER_TOKEN),
                                            t.max_new_tokens, version.render_options)) > min(lengths)]
        if too_short:
            raise CommandError(f"--lengths: {min(lengths):,} tokens is too short on {version.slug} "
                               f"({'; '.join(too_short)}).")
        limit = opts["limit"] if opts["limit"] is not None else version.samples_per_cell
        if limit <= 0:
            raise CommandError(f"--limit must be a positive number of samples; got {limit}.")
        target = self._local(version, lengths, opts) if opts["local"] else self._endpoint(version, lengths, opts)
        try:
            target.preflight()
        except SubmissionNotRunnable as exc:
            checked = exc.preflight.facts if exc.preflight else {}
            code = f" ({checked['code']})" if checked.get("code") else ""
            raise CommandError(f"The {'model' if opts['local'] else 'endpoint'} failed the pre-flight check{code}: "
                               f"{exc}") from None
        cells = []
        for task in tasks:
            for length in lengths:
                for point in target.points():
                    cells.append(self._cell(target, task, length, point, limit, as_json=bool(opts["json"])))
        if opts["json"]:
            self.stdout.write(json.dumps(cells))

    def _endpoint(self, version: BenchmarkVersion, lengths: list[int], opts: dict) -> EndpointTarget:
        if not opts["model"]:
            raise CommandError("--model is required with --endpoint: the model name the endpoint serves.")
        api_key = None
        if opts["api_key_env"]:
            api_key = os.environ.get(str(opts["api_key_env"]))
            if not api_key:
                raise CommandError(f"--api-key-env: the environment variable {opts['api_key_env']} is not set.")
        concurrency = opts["concurrency"]
        if concurrency is not None and not 1 <= concurrency <= 256:
            raise CommandError(f"--concurrency takes a number of requests from 1 to 256; got {concurrency}.")
        extra = _request_options(opts["request_options"])
        hint = str(opts["tokenizer_hint"] or "")
        if hint and prompt_sizing.local_tokenizer(hint) is None:
            raise CommandError(f"--tokenizer-hint: no tokenizer {hint!r} on this machine (a local folder, or a "
                               "repo id already in the Hugging Face cache); leave it out to size by calibration.")
        try:
            config = engine_config(base_url=str(opts["endpoint"]), model=str(opts["model"]),
                                   api_mode=str(opts["mode"]), api_key=api_key)
            # Whoever runs this command already has a shell here: it checks their own endpoint (often on
            # localhost), not a stranger's URL, so the server-side address rules do not apply.
            config = dataclasses.replace(config, allow_private=True, extra_body=extra or None,
                                         concurrency=concurrency or config.concurrency)
        except ValueError as exc:
            raise CommandError(f"--endpoint/--model: {exc}.") from None
        return EndpointTarget(version, config, lengths=lengths, tokenizer_hint=hint)

    def _local(self, version: BenchmarkVersion, lengths: list[int], opts: dict) -> LocalTarget:
        methods = [m.strip() for m in str(opts["methods"]).split(",") if m.strip()]
        budgets = _budget_list(str(opts["budgets"]))
        for name in methods:
            try:
                registry.method(name)
            except registry.MethodError as exc:
                raise CommandError(f"--methods: {exc}.") from None
        config = config_for(str(opts["local"]), opts["revision"], aware=query_aware(version))
        target = LocalTarget(version, config, methods=methods, budgets=budgets, lengths=lengths,
                             restrict_to_version=False)
        for point in target.points():
            try:
                registry.check_budget(point.method, point.budget, context_tokens=min(lengths))
            except registry.MethodError as exc:
                raise CommandError(f"--methods/--budgets: {exc}.") from None
        return target

    def _cell(self, target: Target, task: TaskSpec, length: int, point: GridPoint, limit: int, *,
              as_json: bool) -> dict:
        """One cell, run and summarized exactly as a worker does (``Target.cell_run``, ``summarize``)."""
        try:
            run = target.cell_run(point)
        except SubmissionNotRunnable as exc:
            raise CommandError(f"--local/--methods: {exc}.") from None
        with run.backend as backend:
            spec, sizing = prompt_sizing.calibrate(target.spec(task, length, samples=limit), backend, run.sizing, 0)
            outcomes = evaluate_cell(spec, backend, sizing.counter, set(), concurrency=run.concurrency,
                                     breaker=CircuitBreaker(settings.EVAL_BREAKER_THRESHOLD), observe=sizing.observe)
        summary = summarize(outcomes)
        oom = any(o.out_of_memory for o in outcomes)
        efficiency = summary.efficiency.as_json() if summary.efficiency else {}
        cell = {"task": task.key, "length": length, "method": point.method, "budget": point.budget,
                "sizing": sizing.method.value, "status": "oom" if oom else "completed", "score": summary.score,
                "ci": [summary.ci_low, summary.ci_high], "ci_method": summary.ci_method, "n": summary.n,
                "errors": summary.errors, "prompt_tokens_mean": summary.prompt_tokens_mean,
                "target_prompt_tokens": summary.target_prompt_tokens_mean,
                "prompt_token_mismatch": summary.prompt_token_mismatch, "top_error": summary.top_error,
                "ttft_s": summary.ttft_s, "decode_tokens_per_s": summary.decode_tokens_per_s,
                "output_tokens": task.output_tokens, "output_tokens_mean": summary.output_tokens_mean,
                **answer_fields(summary), **efficiency,
                **(dataclasses.asdict(summary.by_turn) if summary.by_turn else {})}
        if not as_json:
            shown = "-" if summary.score is None else f"{summary.score:6.1f}"
            kv = cell.get("kv_bytes")
            no_answer = f"  no final answer={summary.no_final_answer}" if summary.no_final_answer else ""
            self.stdout.write(
                f"{task.key:<20} {length:>7} tokens  {point.method:<18} {point.budget:>5g}  score {shown}  "
                f"n={summary.n} errors={summary.errors}  stopped on length={summary.finish_length}{no_answer}"
                + (f"  kv={kv / 2**20:.1f} MiB" if kv is not None else "") + ("  OOM" if oom else "")
                + (f"  turn 1 {_figure(summary.by_turn.first_turn_score)} -> later "
                   f"{_figure(summary.by_turn.later_turns_score)}" if summary.by_turn else ""))
        return cell


def _figure(score: float | None) -> str:
    return "-" if score is None else f"{score:.1f}"
