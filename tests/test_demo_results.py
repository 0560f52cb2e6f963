"""generate_demo_results fills the leaderboard with plausible, clearly fictional completed submissions; re-running
it replaces only the demo rows, and the numbers are a function of the seed."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F, Q

from leaderboard.demo_data import DEMO_ORGANISATION, generate
from leaderboard.models import (
    BenchmarkVersion,
    Cell,
    CellStatus,
    LeaderboardRow,
    ModelEntry,
    ModelKind,
    SampleResult,
    Submission,
    SubmissionStatus,
    TaskCategory,
    Visibility,
)
from tests.factories import make_entry, make_submission, make_version

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # slow: generates thousands of demo rows

REAL_FAMILIES = ("llama", "mistral", "mixtral", "qwen", "gemma", "phi-", "gpt", "claude", "gemini", "falcon",
                 "yi-", "deepseek", "jamba", "command", "granite", "olmo", "glm", "internlm", "nemotron")


@pytest.fixture
def versions() -> dict[str, BenchmarkVersion]:
    call_command("seed_versions", stdout=StringIO())
    return {v.slug: v for v in BenchmarkVersion.objects.all()}


def run(*args: str) -> str:
    out = StringIO()
    call_command("generate_demo_results", *args, stdout=out)
    return out.getvalue()


def demo_scores() -> list[tuple]:
    return list(
        Cell.objects.filter(submission__model__organisation=DEMO_ORGANISATION)
        .order_by("submission__model__display_name", "task__key", "length", "method", "-budget")
        .values_list("submission__model__display_name", "task__key", "length", "method", "budget", "score",
                     "ci_low", "ci_high")
    )


def test_generates_the_requested_number_of_completed_public_submissions_with_every_task_and_length(versions):
    smoke = versions["smoke"]
    output = run("--version", "smoke", "--count", "6", "--seed", "3")
    subs = Submission.objects.filter(model__organisation=DEMO_ORGANISATION)
    assert subs.count() == 6 and ModelEntry.objects.filter(organisation=DEMO_ORGANISATION).count() == 6
    grid = {(t, n) for t in smoke.tasks.values_list("key", flat=True) for n in smoke.lengths}
    for sub in subs:
        assert sub.status == SubmissionStatus.COMPLETED and sub.visibility == Visibility.PUBLIC
        assert sub.version == smoke and sub.started_at < sub.finished_at
        full = sub.cells.filter(method="full", budget=1.0)
        assert set(full.values_list("task__key", "length")) == grid
        assert not sub.cells.exclude(status=CellStatus.COMPLETED).exists()
        assert sub.cells_total == sub.cells_done == sub.cells.count()
    assert not Cell.objects.exclude(samples_total=smoke.samples_per_cell).exists()
    assert not Cell.objects.exclude(samples_done=F("samples_total")).exists()
    assert "6 demo entries, 6 submissions" in output


def test_huggingface_entries_get_every_kv_method_and_budget_below_full_and_endpoints_only_the_full_cache(versions):
    smoke = versions["smoke"]
    generate(smoke, 6, seed=1)
    methods = [m for m in smoke.kv_methods if m != "full"]
    budgets = [b for b in smoke.kv_budgets if b < 1.0]
    per_point = smoke.tasks.count() * len(smoke.lengths)
    entries = ModelEntry.objects.filter(organisation=DEMO_ORGANISATION)
    local = entries.filter(kind=ModelKind.HUGGINGFACE)
    assert local.exists() and entries.filter(kind=ModelKind.ENDPOINT).exists()
    for entry in entries:
        sub = entry.submissions.get()
        points = set(sub.cells.values_list("method", "budget").distinct())
        if entry.kind == ModelKind.HUGGINGFACE:
            assert entry.hf_repo == f"demo/{entry.display_name}"
            assert points == {("full", 1.0)} | {(m, b) for m in methods for b in budgets}
            assert sub.cells.count() == per_point * (1 + len(methods) * len(budgets))
        else:
            assert entry.endpoint_url and entry.api_model_name
            assert points == {("full", 1.0)}


def test_scores_lie_between_0_and_100_inside_their_confidence_intervals(versions):
    summary = generate(versions["smoke"], 9, seed=5)
    cells = Cell.objects.all()
    assert cells.count() == summary.cells > 0
    assert not cells.filter(Q(score__isnull=True) | Q(score__lt=0) | Q(score__gt=100)).exists()
    assert not cells.filter(Q(ci_low__gt=F("score")) | Q(ci_high__lt=F("score"))).exists()
    assert not cells.filter(Q(ci_low__lt=0) | Q(ci_high__gt=100)).exists()
    assert cells.filter(ci_high__gt=F("ci_low")).exists()
    assert not cells.filter(kv_bytes__isnull=True).exists()
    assert not cells.filter(samples_errored__gt=3).exists()


def test_running_twice_with_the_same_seed_leaves_the_same_rows_and_scores(versions):
    run("--version", "smoke", "--count", "5", "--seed", "11")
    first = demo_scores()
    counts = (ModelEntry.objects.count(), Submission.objects.count(), Cell.objects.count(),
              LeaderboardRow.objects.count())
    output = run("--version", "smoke", "--count", "5", "--seed", "11")
    assert demo_scores() == first
    assert (ModelEntry.objects.count(), Submission.objects.count(), Cell.objects.count(),
            LeaderboardRow.objects.count()) == counts
    assert "replaced 5 earlier demo entries" in output


def test_a_different_seed_gives_different_scores(versions):
    generate(versions["smoke"], 5, seed=1)
    first = [s[5] for s in demo_scores()]
    generate(versions["smoke"], 5, seed=2)
    assert [s[5] for s in demo_scores()] != first


def test_regenerating_deletes_only_the_demo_entries(versions):
    real = make_entry(display_name="Someone's model", organisation="A real lab")
    real_sub = make_submission(model=real, version=versions["smoke"], status=SubmissionStatus.QUEUED)
    generate(versions["smoke"], 4, seed=1)
    generate(versions["smoke"], 3, seed=1)
    assert ModelEntry.objects.filter(pk=real.pk).exists() and Submission.objects.filter(pk=real_sub.pk).exists()
    assert ModelEntry.objects.filter(organisation=DEMO_ORGANISATION).count() == 3
    assert ModelEntry.objects.count() == 4


def test_leaderboard_rows_are_computed_for_every_kv_point_of_every_demo_submission(versions):
    summary = generate(versions["smoke"], 6, seed=4)
    rows = LeaderboardRow.objects.filter(organisation=DEMO_ORGANISATION)
    assert rows.count() == summary.rows > 0
    for sub in Submission.objects.filter(model__organisation=DEMO_ORGANISATION):
        points = set(sub.cells.values_list("method", "budget").distinct())
        assert set(rows.filter(submission=sub).values_list("method", "budget")) == points
        full = rows.get(submission=sub, method="full")
        assert full.average is not None and 0 <= full.average <= 100
        assert full.model_name == sub.model.display_name and full.is_baseline == sub.is_baseline


def test_some_model_scores_decrease_with_length_and_kv_compression_costs_score(versions):
    v1 = versions["v1"]
    generate(v1, 6, seed=7)
    shortest, longest = v1.lengths[0], v1.lengths[-1]
    declines = []
    for row in LeaderboardRow.objects.filter(method="full"):
        by_length = row.scores_by_length
        declines.append(by_length[str(shortest)] - by_length[str(longest)])
    assert max(declines) > 20
    full = {r.submission_id: r.average for r in LeaderboardRow.objects.filter(method="full")}
    smallest = min(b for b in v1.kv_budgets if b < 1.0)
    squeezed = LeaderboardRow.objects.filter(method="streaming_llm", budget=smallest)
    assert squeezed.exists()
    assert all(r.average < full[r.submission_id] for r in squeezed)


def test_sample_results_are_stored_for_needle_cells_only_with_depth_and_target_length(versions):
    summary = generate(versions["smoke"], 3, seed=2, samples_per_cell=4)
    needles = Cell.objects.filter(task__category=TaskCategory.RETRIEVAL)
    assert summary.samples == SampleResult.objects.count() == needles.count() * 4 > 0
    assert not SampleResult.objects.exclude(cell__task__category=TaskCategory.RETRIEVAL).exists()
    for sample in SampleResult.objects.select_related("cell")[:50]:
        assert sample.score in (0.0, 100.0) and sample.prediction and sample.expected
        assert 0 <= sample.metadata["depth_percent"] <= 100
        assert 0 < sample.metadata["target_prompt_tokens"] < sample.cell.length
    # Right answers follow the cell's score: a perfect cell has no misses, a failed one no hits.
    for cell in needles.filter(score__gte=95):
        assert cell.samples.filter(score=100).count() >= 3
    for cell in needles.filter(score__lte=5):
        assert cell.samples.filter(score=100).count() <= 1


def test_demo_models_have_fictional_unique_names_and_plausible_facts(versions):
    generate(versions["smoke"], 40, seed=9)
    entries = list(ModelEntry.objects.filter(organisation=DEMO_ORGANISATION))
    names = [e.display_name for e in entries]
    assert len(set(names)) == 40
    for name in names:
        assert re.fullmatch(r"[A-Z][a-z]+(-\d)?-[\d.]+B(-\d+[KM]|-Instruct)?", name), name
        assert not any(family in name.lower() for family in REAL_FAMILIES), name
    assert all(e.parameters_b and e.parameters_b > 0 and e.claimed_context >= 32768 for e in entries)
    assert sum(e.kind == ModelKind.HUGGINGFACE for e in entries) >= 10
    assert 1 <= Submission.objects.filter(is_baseline=True).count() < 10


def test_the_command_defaults_to_the_default_version_and_reports_progress(versions):
    output = run("--count", "2", "--seed", "1")
    default = BenchmarkVersion.objects.get(is_default=True)
    assert set(Submission.objects.values_list("version", flat=True)) == {default.pk}
    assert "2/2 demo models written" in output and "leaderboard rows" in output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--version", "nope"], "--version"),
        (["--version", "draft-one"], "--version"),
        (["--count", "0"], "--count"),
        (["--count", "-3"], "--count"),
        (["--samples-per-cell", "-1"], "--samples-per-cell"),
    ],
)
def test_bad_arguments_raise_a_command_error_naming_the_argument(versions, args, named):
    make_version("draft-one")
    with pytest.raises(CommandError, match=re.escape(named)):
        run(*args)
    assert not ModelEntry.objects.filter(organisation=DEMO_ORGANISATION).exists()


def test_without_any_published_version_the_command_asks_for_one():
    with pytest.raises(CommandError, match="--version"):
        run("--count", "1")
