"""What a submission will cost before it runs: requests, prompt tokens, new tokens and, given a speed, a duration.

Every figure here is *computed* from a benchmark version's spec, never measured:

- **requests**: one per sample, so tasks x lengths x ``samples_per_cell`` x grid points (an endpoint is measured as
  served: one point, the full cache; a local model adds one point per KV method and budget it runs).
- **prompt tokens**: each sample's prompt is sized to a target of its length minus the task's new tokens
  (``max_new_tokens``, plus the version's thinking budget when it expects reasoning), in the model's own tokens;
  the generator stops at most 1% (or 16 tokens) below that target. The sum of the targets is therefore an upper
  bound that the prompts actually sent fall short of by at most 1%. Chat-template markup is inside the target.
- **new tokens**: the sum of the per-request limits, an upper bound: most answers stop long before their limit.
- **duration**: only with a :class:`Speed` measured on the endpoint (or the local model), see :func:`speed_for`;
  each request is taken to last ``overhead_s + prompt_tokens / prompt_tokens_per_s`` seconds with ``in_flight``
  requests at once. It is an estimate, and its ``duration_basis`` says what it rests on.

The web pages, the admin and the API may all call :func:`estimate` and :func:`for_submission`; both are cheap (one
query for a version's tasks, a few more for a submission's measured speed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from django.conf import settings

from evalworkers.kv import registry as kv_registry
from leaderboard.models import ModelKind
from leaderboard.progress import humanize

if TYPE_CHECKING:
    from leaderboard.models import BenchmarkVersion, Submission

FULL_CACHE: tuple[tuple[str, float], ...] = (tuple(kv_registry.FULL_CACHE),)
SPEED_SAMPLE_LIMIT = 2000  # most recent timed requests a speed is measured on
MIN_TIMED_REQUESTS = 3
UNKNOWN_LOCAL = "unknown until the model is loaded on a worker and its first samples are timed"


@dataclass(frozen=True)
class Speed:
    """How fast one model served requests, as measured.

    A request lasts ``overhead_s + prompt_tokens / prompt_tokens_per_s`` seconds (decoding is inside the overhead)
    and ``in_flight`` requests run at once. ``prompt_tokens_per_s`` is None when only the overhead is known (the
    probe's short round trip): a duration from it is a lower bound. ``basis`` says where the figures come from.
    """

    overhead_s: float
    prompt_tokens_per_s: float | None
    in_flight: int
    basis: str

    @property
    def is_lower_bound(self) -> bool:
        return self.prompt_tokens_per_s is None


@dataclass(frozen=True)
class LengthCost:
    """The share of one context length (tokens) in an estimate."""

    length: int
    requests: int
    prompt_tokens: int
    new_tokens_max: int


@dataclass(frozen=True)
class CostEstimate:
    """What a submission of one kind sends to (or runs on) a model on one version; see the module docstring.

    Counts are whole requests and tokens; ``duration_s`` is seconds of wall-clock time for the whole grid, or None
    when no speed is known (``duration_basis`` then says so)."""

    version_slug: str
    kind: str
    grid_points: tuple[tuple[str, float], ...]
    tasks: int
    lengths: tuple[int, ...]
    samples_per_cell: int
    cells: int
    requests: int
    prompt_tokens: int
    new_tokens_max: int
    by_length: tuple[LengthCost, ...] = field(default=())
    duration_s: float | None = None
    duration_is_lower_bound: bool = False
    duration_basis: str = "unknown until the endpoint is probed: its speed is measured when a worker takes it"

    @property
    def points(self) -> int:
        return len(self.grid_points)

    @property
    def requests_text(self) -> str:
        return f"{self.requests:,}"

    @property
    def prompt_tokens_text(self) -> str:
        return tokens_text(self.prompt_tokens)

    @property
    def new_tokens_text(self) -> str:
        return tokens_text(self.new_tokens_max)

    @property
    def duration_text(self) -> str:
        """"about 3 days" ("at least ..." for a lower bound), or "" when no speed is known."""
        if self.duration_s is None:
            return ""
        if not self.duration_is_lower_bound:
            return humanize(self.duration_s)
        if self.duration_s < 90:
            return f"at least {round(self.duration_s)} seconds"
        return f"at least {humanize(self.duration_s).removeprefix('about ')}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures (for json_script, the admin or the API): counts of requests and tokens, seconds."""
        data = asdict(self)
        data["grid_points"] = [list(p) for p in self.grid_points]
        data["lengths"] = list(self.lengths)
        data["by_length"] = [asdict(c) for c in self.by_length]
        return data


def tokens_text(n: int) -> str:
    """A token count in full, with its size in words when it is large: "360,475,200 tokens (about 360 million)"."""
    for size, word in ((1_000_000_000, "billion"), (1_000_000, "million")):
        if n >= size:
            return f"{n:,} tokens (about {float(f'{n / size:.3g}'):,g} {word})"
    return f"{n:,} tokens"


def new_tokens_per_request(version: BenchmarkVersion, max_new_tokens: int) -> int:
    """A task's new-token limit as the generator applies it: plus the thinking budget on a reasoning version."""
    extra = version.reasoning_extra_tokens
    return max_new_tokens + (extra or 0)


def estimate(version: BenchmarkVersion, *, kind: str,
             grid_points: Sequence[tuple[str, float]] | None = None,
             speed: Speed | None = None) -> CostEstimate:
    """Requests, prompt tokens (upper bound), new tokens (upper bound) and, with ``speed``, the expected duration
    of one submission of ``kind`` ("endpoint", "huggingface" or "reported") on ``version``.

    ``grid_points`` are the (KV method, budget) pairs a local model runs, the full cache included; None means the
    full cache only, which is what an endpoint always runs. A reported entry is imported, not run: it costs
    nothing."""
    points = tuple((str(m), float(b)) for m, b in (grid_points or FULL_CACHE))
    if not ModelKind(kind).runs_kv_methods:
        points = FULL_CACHE
    tasks = [new_tokens_per_request(version, t.max_new_tokens) for t in version.tasks.all()]
    lengths = tuple(int(n) for n in version.lengths or [])
    per_point = version.samples_per_cell * len(points)
    runs = kind != "reported"
    by_length = tuple(
        LengthCost(length=n, requests=per_point * len(tasks) if runs else 0,
                   prompt_tokens=per_point * sum(max(0, n - new) for new in tasks) if runs else 0,
                   new_tokens_max=per_point * sum(tasks) if runs else 0)
        for n in lengths)
    result = CostEstimate(
        version_slug=version.slug, kind=str(kind), grid_points=points, tasks=len(tasks), lengths=lengths,
        samples_per_cell=version.samples_per_cell,
        cells=len(tasks) * len(lengths) * len(points) if runs else 0,
        requests=sum(c.requests for c in by_length), prompt_tokens=sum(c.prompt_tokens for c in by_length),
        new_tokens_max=sum(c.new_tokens_max for c in by_length), by_length=by_length,
    )
    if not runs:
        return _with_duration(result, 0.0, False, "nothing runs: reported results are imported")
    if speed is None:
        return result if kind == "endpoint" else replace(result, duration_basis=UNKNOWN_LOCAL)
    return _with_duration(result, duration_at(result, speed), speed.is_lower_bound, speed.basis)


def duration_at(cost: CostEstimate, speed: Speed) -> float:
    """Seconds for the whole grid at ``speed`` (without the prompt term when its rate is unknown)."""
    serial = cost.requests * speed.overhead_s
    if speed.prompt_tokens_per_s:
        serial += cost.prompt_tokens / speed.prompt_tokens_per_s
    return serial / max(1, speed.in_flight)


def _with_duration(cost: CostEstimate, seconds: float, lower_bound: bool, basis: str) -> CostEstimate:
    return replace(cost, duration_s=seconds, duration_is_lower_bound=lower_bound, duration_basis=basis)


def offered_grid(version: BenchmarkVersion) -> tuple[tuple[str, float], ...]:
    """The full cache plus every (method, budget) a version offers: the most a local model can ask for."""
    offered = {method: budgets for method, budgets in version.kv_offered().items() if budgets}
    every_budget = sorted({b for budgets in offered.values() for b in budgets}, reverse=True)
    return tuple(kv_registry.grid(list(offered), every_budget, offered=offered))


def grid_for(sub: Submission) -> tuple[tuple[str, float], ...]:
    """The (method, budget) pairs a submission runs (as the workers expand them); the full cache alone when its
    request no longer fits the version's offer (the workers then refuse it with the reason)."""
    if not ModelKind(sub.model.kind).runs_kv_methods:
        return FULL_CACHE
    try:
        return tuple(kv_registry.grid(list(sub.kv_methods), [float(b) for b in sub.kv_budgets],
                                      offered=sub.version.kv_offered()))
    except kv_registry.MethodError:
        return FULL_CACHE


def in_flight_for(kind: str) -> int:
    """Requests a worker keeps in flight per cell: EVAL_CONCURRENCY for an endpoint, one for a local model."""
    return int(settings.EVAL_CONCURRENCY) if kind == "endpoint" else 1


def speed_for(sub: Submission) -> Speed | None:
    """The speed measured for a submission's model, best first:

    1. its own timed requests (or, before it has any, those of the same model entry's other runs): a least-squares
       line of latency against prompt tokens, so both the per-request overhead and the prompt rate are measured;
    2. the pre-flight probe's round trip of one short request: the overhead only, so a duration from it is a
       lower bound (long prompts take longer);
    3. None: unknown until probed."""
    from leaderboard.models import SampleResult, Submission

    in_flight = in_flight_for(sub.model.kind)
    timed = SampleResult.objects.filter(latency_s__gt=0, prompt_tokens__gt=0)
    for scope, whose in ((timed.filter(cell__submission=sub), "this submission"),
                         (timed.filter(cell__submission__model=sub.model_id), "earlier runs of this model")):
        pairs = list(scope.order_by("-created_at").values_list("prompt_tokens", "latency_s")[:SPEED_SAMPLE_LIMIT])
        speed = fit_speed(pairs, in_flight=in_flight, whose=whose)
        if speed is not None:
            return speed
    probe = Submission.objects.filter(pk=sub.pk).values_list("probe_result", flat=True).first() or {}
    latency = probe.get("latency_s") if probe.get("ok") else None
    if isinstance(latency, int | float) and latency > 0:
        return Speed(overhead_s=float(latency), prompt_tokens_per_s=None, in_flight=in_flight,
                     basis=(f"at least: the pre-flight probe's round trip of {latency:.2f} s for one short request, "
                            f"{in_flight} in flight; long prompts take longer, so the duration is a lower bound "
                            "until the first samples are timed"))
    return None


def fit_speed(pairs: Sequence[tuple[int, float]], *, in_flight: int, whose: str) -> Speed | None:
    """A Speed from (prompt tokens, seconds) of timed requests; None with fewer than MIN_TIMED_REQUESTS.

    With several prompt sizes a least-squares line gives overhead (intercept) and rate (1 / slope); with one size,
    or a line that does not rise, every second is charged to the prompt (overhead 0)."""
    if len(pairs) < MIN_TIMED_REQUESTS:
        return None
    n = len(pairs)
    xs = [float(p) for p, _ in pairs]
    ys = [float(s) for _, s in pairs]
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    intercept = mean_y - slope * mean_x
    if slope > 0 and intercept >= 0:
        overhead, rate = intercept, 1.0 / slope
    else:
        overhead, rate = 0.0, sum(xs) / sum(ys)
    return Speed(overhead_s=overhead, prompt_tokens_per_s=rate, in_flight=in_flight,
                 basis=(f"measured on {n:,} timed requests of {whose}: {rate:,.0f} prompt tokens/s and "
                        f"{overhead:.2f} s per request, {in_flight} in flight"))


def for_submission(sub: Submission) -> CostEstimate:
    """The estimate for a submission: its kind and KV grid, at its measured speed when there is one."""
    return estimate(sub.version, kind=sub.model.kind, grid_points=grid_for(sub), speed=speed_for(sub))
