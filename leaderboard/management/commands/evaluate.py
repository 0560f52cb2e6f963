"""Run an evaluation synchronously (an endpoint, or a local model under KV methods), storing nothing."""

from __future__ import annotations

import dataclasses
import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evalworkers import prompt_sizing
from evalworkers.backends import CircuitBreaker, EndpointBackend, probe
from evalworkers.backends.options import OptionsError, describe_allowed, validate_request_options
from evalworkers.benchmark import CalibratedCounter, HFTokenCounter, RenderOptions, min_length
from evalworkers.evaluation import CellSpec, CellSummary, evaluate_samples, summarize
from evalworkers.runner import DEFAULT_CHARS_PER_TOKEN, endpoint_sizing, engine_config, probe_options
from leaderboard.models import BenchmarkVersion

EFFICIENCY_KEYS = {"kv_bytes": "kv_bytes", "kv_bytes_full": "kv_bytes_full", "kept_fraction": "kept_fraction",
                   "physical": "physical", "peak_mem_bytes": "peak_memory_bytes", "prefill_s": "prefill_s",
                   "ttft_s": "ttft_s", "decode_tps": "decode_tokens_per_s"}


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
                            help="Comma-separated KV methods (with --local), e.g. full,snapkv,streaming_llm.")
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
        too_short = [f"{t.key} needs at least {need:,} tokens" for t in tasks
                     if (need := min_length(t.task_type, t.params, CalibratedCounter(DEFAULT_CHARS_PER_TOKEN),
                                            t.max_new_tokens, version.render_options)) > min(lengths)]
        if too_short:
            raise CommandError(f"--lengths: {min(lengths):,} tokens is too short on {version.slug} "
                               f"({'; '.join(too_short)}).")
        limit = opts["limit"] if opts["limit"] is not None else version.samples_per_cell
        if limit <= 0:
            raise CommandError(f"--limit must be a positive number of samples; got {limit}.")
        if opts["local"]:
            self._local(version, tasks, lengths, limit, opts)
            return
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

        checked = probe(config, required_context=max(lengths), timeout_s=settings.EVAL_PROBE_TIMEOUT_S,
                        retry_window_s=settings.EVAL_PROBE_RETRY_S, **probe_options(version))
        if not checked.ok:
            raise CommandError(f"The endpoint failed the pre-flight check ({checked.code}): {checked.message}")
        config = dataclasses.replace(config, **checked.learned().config_fields())
        options = RenderOptions.from_version_params(version.params)
        cells = []
        with EndpointBackend(config) as backend:
            for task in tasks:
                for length in lengths:
                    # Sized afresh per cell: calibration is per haystack kind, so per task.
                    sizing = endpoint_sizing(backend, checked.learned(), checked.chars_per_token, hint)
                    spec = CellSpec(seed=version.seed, task_key=task.key, task_type=task.task_type,
                                    params=task.params, length=length, max_new_tokens=task.max_new_tokens,
                                    samples=limit, api_mode=config.api_mode, options=options)
                    spec, sizing = prompt_sizing.calibrate(spec, backend, sizing, 0)
                    outcomes = evaluate_samples(spec, backend, sizing.counter, range(limit),
                                                concurrency=config.concurrency,
                                                breaker=CircuitBreaker(settings.EVAL_BREAKER_THRESHOLD),
                                                observe=sizing.observe)
                    summary = summarize(outcomes)
                    cells.append({"task": task.key, "length": length, "method": "full", "budget": 1.0,
                                  "sizing": sizing.method.value, "score": summary.score,
                                  "ci": [summary.ci_low, summary.ci_high], "ci_method": summary.ci_method,
                                  "n": summary.n,
                                  "errors": summary.errors, "prompt_tokens_mean": summary.prompt_tokens_mean,
                                  "target_prompt_tokens": summary.target_prompt_tokens_mean,
                                  "prompt_token_mismatch": summary.prompt_token_mismatch,
                                  "top_error": summary.top_error, **answer_fields(summary)})
                    if not opts["json"]:
                        shown = "-" if summary.score is None else f"{summary.score:6.1f}"
                        no_answer = f"  no final answer={summary.no_final_answer}" if summary.no_final_answer else ""
                        self.stdout.write(f"{task.key:<20} {length:>7} tokens  score {shown}  n={summary.n} "
                                          f"errors={summary.errors}  stopped on length={summary.finish_length}"
                                          f"{no_answer}")
        if opts["json"]:
            self.stdout.write(json.dumps(cells))

    def _local(self, version: BenchmarkVersion, tasks: list, lengths: list[int], limit: int, opts: dict) -> None:
        from evalworkers import local_runs
        from evalworkers.backends.local import LocalBackend, ModelLoadError, load
        from evalworkers.kv import registry

        methods = [m.strip() for m in str(opts["methods"]).split(",") if m.strip()]
        budgets = _budget_list(str(opts["budgets"]))
        for name in methods:
            try:
                registry.method(name)
            except registry.MethodError as exc:
                raise CommandError(f"--methods: {exc}.") from None
        points = [(m, 1.0) for m in methods if m == "full"] + [
            (m, b) for m in methods if m != "full" for b in budgets]
        for name, budget in points:
            try:
                registry.check_budget(name, budget, context_tokens=min(lengths))
            except registry.MethodError as exc:
                raise CommandError(f"--methods/--budgets: {exc}.") from None
        aware = local_runs.query_aware(version)
        config = local_runs.config_for(str(opts["local"]), opts["revision"], aware=aware)
        try:
            loaded = load(config)
        except ModelLoadError as exc:
            raise CommandError(f"--local: {exc}.") from None
        options = RenderOptions.from_version_params(version.params)
        cells = []
        for task in tasks:
            for length in lengths:
                spec = CellSpec(seed=version.seed, task_key=task.key, task_type=task.task_type, params=task.params,
                                length=length, max_new_tokens=task.max_new_tokens, samples=limit, options=options)
                for name, budget in points:
                    try:
                        backend = LocalBackend(loaded, name, budget, files_dir=config.files_dir, query_aware=aware,
                                               memory_limit_bytes=config.memory_limit_bytes)
                    except ModelLoadError as exc:
                        raise CommandError(f"--methods: {exc}.") from None
                    sizing = prompt_sizing.Sizing(prompt_sizing.SizingMethod.MODEL_TOKENIZER,
                                                  HFTokenCounter(loaded.tokenizer), measure=backend.count_prompt)
                    point_spec, sizing = prompt_sizing.calibrate(spec, backend, sizing, 0)
                    outcomes = evaluate_samples(point_spec, backend, sizing.counter, range(limit), concurrency=1)
                    summary = summarize(outcomes)
                    figures = local_runs.cell_efficiency(outcomes)
                    oom = next((o for o in outcomes if o.metadata.get("oom")), None)
                    cell = {"task": task.key, "length": length, "method": name, "budget": budget,
                            "sizing": sizing.method.value, "score": summary.score,
                            "ci": [summary.ci_low, summary.ci_high], "ci_method": summary.ci_method,
                            "n": summary.n, "errors": summary.errors, "prompt_tokens_mean": summary.prompt_tokens_mean,
                            "prompt_token_mismatch": summary.prompt_token_mismatch, "top_error": summary.top_error,
                            "status": "oom" if oom else "completed", "query_aware": aware, **answer_fields(summary),
                            **{key: figures.get(field) for key, field in EFFICIENCY_KEYS.items()}}
                    cells.append(cell)
                    if not opts["json"]:
                        shown = "-" if summary.score is None else f"{summary.score:6.1f}"
                        kv = cell["kv_bytes"]
                        self.stdout.write(
                            f"{task.key:<20} {length:>7} tokens  {name:<18} {budget:>5g}  score {shown}  "
                            f"n={summary.n} errors={summary.errors}  "
                            f"kv={'-' if kv is None else f'{kv / 2**20:.1f} MiB'}"
                            + ("  OOM" if oom else ""))
        if opts["json"]:
            self.stdout.write(json.dumps(cells))
