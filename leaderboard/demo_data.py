"""Clearly fictional, plausible results so that the leaderboard pages have something to show before real
evaluations exist (`manage.py generate_demo_results`).

Every demo row hangs off a `ModelEntry` whose organisation is `DEMO_ORGANISATION`: regenerating first deletes those
entries (and, by cascade, their submissions, cells, samples and leaderboard rows), so running it twice leaves the
same state. Scores follow a simple model of long-context behaviour: each model has a quality `q` and an effective
length `L_eff`; a cell scores about `q` (less the task's difficulty) up to `L_eff` and then decays logistically in
log2(length); KV-compression methods lose more at smaller budgets and longer lengths. Everything is a function of
the seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from django.db import transaction
from django.utils import timezone

from evalworkers.kv import registry as kv_registry
from evalworkers.stats import wilson
from leaderboard import board_snapshots, rows
from leaderboard.models import (
    BenchmarkVersion,
    Cell,
    CellStatus,
    CiMethod,
    LeaderboardRow,
    ModelEntry,
    ModelKind,
    SampleResult,
    Submission,
    SubmissionStatus,
    TaskCategory,
    TaskSpec,
    VersionStatus,
    Visibility,
)

DEMO_ORGANISATION = "Demo data"
MODELS_PER_CHUNK = 10
BATCH_SIZE = 2000

# Names are built from these syllables; none of the results is a real model family (checked against REAL_NAMES).
ONSETS = ("Ast", "Corv", "Lum", "Briv", "Cal", "Dor", "Fen", "Hal", "Ist", "Kest", "Mor", "Nim", "Pell", "Quor",
          "Sel", "Tav", "Ulm", "Vey", "Wren", "Zel", "Thal", "Ebr")
CODAS = ("er", "id", "en", "ix", "ara", "o", "el", "ova", "ith", "ane", "is", "ow")
REAL_NAMES = frozenset({
    "llama", "mistral", "mixtral", "ministral", "codestral", "pixtral", "qwen", "qwq", "gemma", "gemini", "phi",
    "falcon", "yi", "gpt", "claude", "jamba", "command", "deepseek", "granite", "olmo", "orca", "vicuna", "alpaca",
    "zephyr", "starling", "dolphin", "hermes", "solar", "aquila", "baichuan", "internlm", "glm", "minicpm",
    "nemotron", "jais", "bloom", "pythia", "mamba", "rwkv", "orion", "aria", "kimi", "grok", "reka", "luminous",
    "mpt", "dbrx", "arctic", "cohere", "aya", "ernie", "hunyuan", "minimax", "megabeam", "longchat", "lwm",
    "galactica", "opt", "palm", "chinchilla", "gopher", "jurassic", "titan", "nova", "sonnet", "opus", "haiku",
    "smollm", "stablelm", "xgen", "persimmon", "fuyu", "exaone", "skywork", "tulu", "openchat", "wizard", "nous",
    "yarn", "prolong", "doubao", "pangu", "sailor", "koala", "guanaco", "dolly", "cerebras", "mosaic",
})
SIZES_B = (0.5, 1.5, 3, 7, 8, 13, 14, 22, 34, 70, 72, 123)
SIZE_WEIGHTS = (1, 2, 2, 5, 4, 3, 3, 2, 3, 3, 2, 1)
CONTEXTS = (32768, 65536, 131072, 262144, 524288, 1048576)
CONTEXT_WEIGHTS = (2, 2, 5, 2, 1, 1)

# Points below the model's quality at full strength; retrieval is easiest, aggregation and QA hardest.
TASK_OFFSETS = {
    "niah_single_1": 1.0, "niah_single_2": 0.0, "niah_single_3": -2.0, "niah_multikey_1": -1.0,
    "niah_multikey_2": -4.0, "niah_multikey_3": -8.0, "niah_multivalue": -3.0, "niah_multiquery": -2.0,
    "vt": -3.0, "ancestral_trace": -8.0, "cwe": -12.0, "fwe": -6.0,
    # v2's names for the prose needle tasks
    "niah_prose_numbers": 0.0, "niah_prose_uuids": -2.0, "niah_prose_multikey": -1.0, "niah_prose_multivalue": -3.0,
    "niah_prose_multiquery": -2.0,
}
CATEGORY_OFFSETS = {TaskCategory.RETRIEVAL: -1.0, TaskCategory.TRACING: -5.0, TaskCategory.AGGREGATION: -10.0,
                    TaskCategory.QA: -15.0}
# How far each category holds up relative to the model's effective length, and what guessing still scores.
CATEGORY_REACH = {TaskCategory.RETRIEVAL: 1.3, TaskCategory.TRACING: 1.0, TaskCategory.AGGREGATION: 0.7,
                  TaskCategory.QA: 0.8}
CATEGORY_FLOOR = {TaskCategory.RETRIEVAL: 1.0, TaskCategory.TRACING: 3.0, TaskCategory.AGGREGATION: 8.0,
                  TaskCategory.QA: 18.0}
# Fraction of the score a KV method loses at the smallest budget (0.1) and the longest length, per category.
KV_LOSS = {
    "streaming_llm": {"retrieval": 0.85, "tracing": 0.55, "aggregation": 0.25, "qa": 0.45},
    "snapkv": {"retrieval": 0.12, "tracing": 0.2, "aggregation": 0.18, "qa": 0.14},
    "pyramidkv": {"retrieval": 0.14, "tracing": 0.22, "aggregation": 0.2, "qa": 0.15},
    "tova": {"retrieval": 0.3, "tracing": 0.35, "aggregation": 0.25, "qa": 0.25},
    "observed_attention": {"retrieval": 0.4, "tracing": 0.4, "aggregation": 0.3, "qa": 0.3},
    "expected_attention": {"retrieval": 0.22, "tracing": 0.28, "aggregation": 0.22, "qa": 0.2},
    "knorm": {"retrieval": 0.5, "tracing": 0.45, "aggregation": 0.35, "qa": 0.4},
    "keydiff": {"retrieval": 0.28, "tracing": 0.3, "aggregation": 0.25, "qa": 0.25},
    "chunkkv": {"retrieval": 0.18, "tracing": 0.25, "aggregation": 0.2, "qa": 0.18},
    "kv_quant": {"retrieval": 0.04, "tracing": 0.05, "aggregation": 0.05, "qa": 0.04},
}
DEFAULT_KV_LOSS = {"retrieval": 0.3, "tracing": 0.3, "aggregation": 0.25, "qa": 0.25}


@dataclass(frozen=True)
class DemoSummary:
    version: str
    entries: int
    submissions: int
    cells: int
    samples: int
    rows: int
    deleted_entries: int

    def line(self) -> str:
        return (f"{self.version}: {self.entries} demo entries, {self.submissions} submissions, {self.cells} cells, "
                f"{self.samples} sample results, {self.rows} leaderboard rows "
                f"(replaced {self.deleted_entries} earlier demo entries)")


@dataclass(frozen=True)
class DemoModel:
    """The hidden truth behind one fictional model's numbers."""

    name: str
    kind: str
    size_b: float
    claimed_context: int
    quality: float
    effective_length: int
    steepness: float
    kv_robustness: float
    speed: float
    is_baseline: bool

    @property
    def bytes_per_token(self) -> int:
        """KV bytes per token of the full cache (2 x layers x kv heads x head dim x 2 bytes), from the size."""
        return round(131072 * math.sqrt(self.size_b / 8) / 4096) * 4096 or 4096


T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _context_label(tokens: int) -> str:
    return f"{tokens // 1048576}M" if tokens >= 1048576 else f"{tokens // 1024}K"


def _is_fictional(stem: str) -> bool:
    low = stem.lower()
    return low not in REAL_NAMES and not any(low.startswith(r) for r in REAL_NAMES if len(r) >= 4)


def model_name(rng: random.Random, size_b: float, claimed_context: int) -> str:
    """A fictional name such as "Aster-7B-128K", "Corvid-34B" or "Lumen-2-13B"."""
    while True:
        stem = rng.choice(ONSETS) + rng.choice(CODAS)
        if _is_fictional(stem):
            break
    size = f"{size_b:g}B"
    form = rng.randrange(4)
    if form == 0:
        return f"{stem}-{size}-{_context_label(claimed_context)}"
    if form == 1:
        return f"{stem}-{rng.randint(2, 4)}-{size}"
    if form == 2:
        return f"{stem}-{size}-Instruct"
    return f"{stem}-{size}"


def _effective_length(rng: random.Random, claimed: int) -> int:
    draw = rng.random()
    if draw < 0.12:
        return rng.choice((1536, 2048, 2560, 3072, 3584))
    if draw < 0.2:
        return int(2 ** rng.uniform(12, 13))
    top = math.log2(min(131072, claimed))
    if draw > 0.93 and claimed > 131072:
        top = math.log2(claimed * 0.7)
    return int(2 ** rng.uniform(13, max(13.5, top)))


def make_models(rng: random.Random, count: int) -> list[DemoModel]:
    models: list[DemoModel] = []
    names: set[str] = set()
    baselines = set(rng.sample(range(count), k=max(1, count // 12)))
    for i in range(count):
        size_b = rng.choices(SIZES_B, weights=SIZE_WEIGHTS)[0]
        claimed = rng.choices(CONTEXTS, weights=CONTEXT_WEIGHTS)[0]
        name = model_name(rng, size_b, claimed)
        while name in names:
            name = model_name(rng, size_b, claimed)
        names.add(name)
        quality = min(99.0, max(70.0, 80 + 3.5 * math.log2(1 + size_b) + rng.gauss(0, 3)))
        models.append(DemoModel(
            name=name,
            kind=ModelKind.HUGGINGFACE if i % 3 == 1 else ModelKind.ENDPOINT,
            size_b=size_b,
            claimed_context=claimed,
            quality=round(quality, 2),
            effective_length=_effective_length(rng, claimed),
            steepness=rng.uniform(0.9, 1.9),
            kv_robustness=rng.uniform(0.7, 1.3),
            speed=rng.uniform(0.8, 1.25),
            is_baseline=i in baselines,
        ))
    return models


def retention(length: int, effective_length: float, steepness: float, margin: float = 1.0) -> float:
    """1 up to the effective length, then a logistic decay in log2(length)."""
    x = math.log2(length / effective_length)
    value = (1 + math.exp(-steepness * margin)) / (1 + math.exp(steepness * (x - margin)))
    return min(1.0, value)


def expected_score(model: DemoModel, task: TaskSpec, length: int) -> float:
    """The noiseless full-cache score of a model on a task at a length (0-100)."""
    category = task.category
    peak = min(100.0, model.quality + TASK_OFFSETS.get(task.key, CATEGORY_OFFSETS.get(category, -5.0)))
    floor = CATEGORY_FLOOR.get(category, 2.0)
    reach = model.effective_length * CATEGORY_REACH.get(category, 1.0)
    return floor + (peak - floor) * retention(length, reach, model.steepness)


def kv_loss(method: str, category: str, budget: float, length_position: float, robustness: float) -> float:
    """The fraction of the score a KV method loses: more at smaller budgets and longer lengths."""
    base = KV_LOSS.get(method, DEFAULT_KV_LOSS).get(category, 0.25)
    squeeze = ((1 - budget) / 0.9) ** 1.6
    return min(0.98, base * squeeze * (0.45 + 0.55 * length_position) * robustness)


def confidence_interval(score: float, n: int) -> tuple[float, float]:
    """The Wilson interval a measured cell of n samples with this score would get (evalworkers/stats.py)."""
    low, high = wilson(score / 100 * max(n, 1), max(n, 1))
    return round(100 * low, 2), round(100 * high, 2)


def _grid(model: DemoModel, version: BenchmarkVersion) -> list[kv_registry.GridPoint]:
    """A fictional local model ran every point its version offers; an endpoint, the full cache."""
    offered = ({m: budgets for m, budgets in version.kv_offered().items() if budgets}
               if ModelKind(model.kind).runs_kv_methods else {})
    return kv_registry.grid(list(offered), sorted({b for bs in offered.values() for b in bs}, reverse=True),
                            offered=offered)


def _entry(model: DemoModel) -> ModelEntry:
    slug = model.name.lower()
    entry = ModelEntry(
        display_name=model.name, organisation=DEMO_ORGANISATION, kind=model.kind,
        parameters_b=Decimal(f"{model.size_b:.2f}"), claimed_context=model.claimed_context,
    )
    if model.kind == ModelKind.HUGGINGFACE:
        entry.hf_repo = f"demo/{model.name}"
    else:
        entry.endpoint_url = "https://api.demo.example/v1"
        entry.api_model_name = slug
    return entry


def _cells(rng: random.Random, model: DemoModel, version: BenchmarkVersion, tasks: list[TaskSpec],
           submission: Submission) -> list[Cell]:
    lengths = list(version.lengths)
    low, high = math.log2(lengths[0]), math.log2(lengths[-1])
    n = version.samples_per_cell
    local = ModelKind(model.kind).runs_kv_methods
    weights_bytes = int(model.size_b * 2e9)
    cells: list[Cell] = []
    for task in tasks:
        task_shift = rng.uniform(-3, 3)
        for length in lengths:
            position = (math.log2(length) - low) / (high - low) if high > low else 1.0
            clean = min(100.0, max(0.0, expected_score(model, task, length) + task_shift))
            full_score = None
            target_tokens = float(length - task.max_new_tokens)
            prompt_tokens = max(1.0, target_tokens - rng.uniform(0, 48))
            for method, budget in _grid(model, version):
                if method == "full":
                    score = clean + rng.uniform(-2.5, 2.5)
                else:
                    loss = kv_loss(method, task.category, budget, position, model.kv_robustness)
                    score = min(clean * (1 - loss) + rng.uniform(-2.0, 2.0), (full_score or 100.0) + 2.0)
                score = round(min(100.0, max(0.0, score)), 2)
                if method == "full":
                    full_score = score
                errored = rng.randint(1, 3) if rng.random() < 0.05 else 0
                ci_low, ci_high = confidence_interval(score, n - errored)
                kv_bytes = int(model.bytes_per_token * prompt_tokens * budget)
                ttft = (0.15 + length * model.size_b ** 0.6 * 1.2e-5 * (1 + length / 262144)) / model.speed
                ttft *= 1.0 if method == "full" else 1.06
                decode = 260 / model.size_b ** 0.45 * model.speed / (1 + 0.6 * length * budget / 131072)
                cells.append(Cell(
                    submission=submission, task=task, length=length, method=method, budget=budget,
                    status=CellStatus.COMPLETED, samples_total=n, samples_done=n, samples_errored=errored,
                    score=score, ci_low=min(ci_low, score), ci_high=max(ci_high, score), ci_method=CiMethod.WILSON,
                    prompt_tokens_mean=round(prompt_tokens, 1), target_prompt_tokens_mean=target_tokens,
                    kv_bytes=kv_bytes, kept_fraction=budget,
                    peak_memory_bytes=int(weights_bytes + kv_bytes * 1.15 + 4e8) if local else None,
                    prefill_s=round(ttft * 0.97, 3) if local else None,
                    ttft_s=round(ttft, 3), decode_tokens_per_s=round(decode, 1),
                    started_at=submission.started_at, finished_at=submission.finished_at,
                ))
    return cells


def _samples(rng: random.Random, cells: Iterable[Cell], per_cell: int) -> Iterator[SampleResult]:
    """`per_cell` needle samples per retrieval cell, their right answers about as many as the cell's score says,
    the misses more likely with the needle in the middle of the context."""
    depths = [round(100 * i / (per_cell - 1)) if per_cell > 1 else 50 for i in range(per_cell)]
    for cell in cells:
        correct = round(per_cell * (cell.score or 0) / 100)
        difficulty = [0.6 * (1 - abs(d - 50) / 50) + rng.random() for d in depths]
        easiest = set(sorted(range(per_cell), key=difficulty.__getitem__)[:correct])
        for i, depth in enumerate(depths):
            value = str(rng.randrange(1_000_000, 10_000_000))
            right = i in easiest
            wrong = str(rng.randrange(1_000_000, 10_000_000))
            target = cell.length - cell.task.max_new_tokens - rng.randrange(0, 48)
            yield SampleResult(
                cell=cell, index=i, expected=[value],
                prediction=f"The special magic number is {value if right else wrong}.",
                score=100.0 if right else 0.0, prompt_tokens=target + rng.randrange(-8, 9), output_tokens=12,
                latency_s=round((cell.ttft_s or 0.5) + 12 / (cell.decode_tokens_per_s or 50), 3),
                ttft_s=cell.ttft_s, metadata={"depth_percent": depth, "target_prompt_tokens": target},
            )


def _submission(rng: random.Random, model: DemoModel, entry: ModelEntry, version: BenchmarkVersion,
                now: datetime, cells_total: int) -> Submission:
    finished = now - timedelta(days=rng.uniform(0.5, 90))
    local = ModelKind(model.kind).runs_kv_methods
    hours = rng.uniform(4, 30) if local else rng.uniform(0.5, 6)
    started = finished - timedelta(hours=hours)
    return Submission(
        model=entry, version=version, status=SubmissionStatus.COMPLETED, visibility=Visibility.PUBLIC,
        is_baseline=model.is_baseline,
        kv_methods=list(version.kv_offered()) if local else [],
        kv_budgets=sorted({b for bs in version.kv_offered().values() for b in bs}, reverse=True) if local else [],
        cells_total=cells_total, cells_done=cells_total,
        samples_total=cells_total * version.samples_per_cell, samples_done=cells_total * version.samples_per_cell,
        queued_at=started - timedelta(minutes=rng.uniform(1, 90)), started_at=started, finished_at=finished,
    )


def delete_demo_entries() -> int:
    """Remove earlier demo entries and everything below them; other entries are untouched."""
    entries = ModelEntry.objects.filter(organisation=DEMO_ORGANISATION)
    count = entries.count()
    # Delete from the leaves up so that each step is one statement instead of a Python-side cascade.
    SampleResult.objects.filter(cell__submission__model__in=entries).delete()
    LeaderboardRow.objects.filter(submission__model__in=entries).delete()
    Cell.objects.filter(submission__model__in=entries).delete()
    entries.delete()
    return count


@transaction.atomic
def generate(version: BenchmarkVersion, count: int, seed: int, samples_per_cell: int = 0, *,
             progress: Callable[[str], None] | None = None) -> DemoSummary:
    """Replace the demo entries with `count` fictional models, each with one completed public submission on the
    published `version`, its full grid of cells, optionally `samples_per_cell` needle samples per retrieval cell,
    and its leaderboard rows. Deterministic in `seed`."""
    if version.status != VersionStatus.PUBLISHED:
        raise ValueError(f"version {version.slug!r} is {version.status}, not published")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if samples_per_cell < 0:
        raise ValueError(f"samples_per_cell must be 0 or more, got {samples_per_cell}")
    tasks = list(version.tasks.order_by("key"))
    if not tasks or not version.lengths:
        raise ValueError(f"version {version.slug!r} has no tasks or lengths")
    deleted = delete_demo_entries()
    rng = random.Random(seed)
    sample_rng = random.Random(f"{seed}:samples")  # samples never shift the scores
    now = timezone.now()
    models = make_models(rng, count)
    submission_ids: list[int] = []
    n_cells = n_samples = 0
    for chunk in _chunks(models, MODELS_PER_CHUNK):
        entries = [_entry(m) for m in chunk]
        subs: list[Submission] = []
        cells: list[Cell] = []
        for model, entry in zip(chunk, entries, strict=True):
            grid_size = len(_grid(model, version)) * len(tasks) * len(version.lengths)
            sub = _submission(rng, model, entry, version, now, grid_size)
            sub_cells = _cells(rng, model, version, tasks, sub)
            sub.samples_errored = sum(c.samples_errored for c in sub_cells)
            subs.append(sub)
            cells += sub_cells
        # Each bulk_create sets the primary keys that the next level's foreign keys pick up.
        ModelEntry.objects.bulk_create(entries)
        Submission.objects.bulk_create(subs)
        cells = Cell.objects.bulk_create(cells, batch_size=BATCH_SIZE)
        n_cells += len(cells)
        if samples_per_cell:
            needles = [c for c in cells if c.task.category == TaskCategory.RETRIEVAL]
            batch: list[SampleResult] = []
            for sample in _samples(sample_rng, needles, samples_per_cell):
                batch.append(sample)
                if len(batch) >= BATCH_SIZE:
                    n_samples += len(SampleResult.objects.bulk_create(batch))
                    batch = []
            n_samples += len(SampleResult.objects.bulk_create(batch))
        submission_ids += [s.pk for s in subs]
        if progress:
            progress(f"{len(submission_ids)}/{count} demo models written ({n_cells} cells so far)")
    with board_snapshots.deferred():  # one rebuild of the board, not one per submission
        n_rows = sum(len(rows.recompute(pk)) for pk in submission_ids)
    return DemoSummary(version=version.slug, entries=count, submissions=len(submission_ids), cells=n_cells,
                       samples=n_samples, rows=n_rows, deleted_entries=deleted)
