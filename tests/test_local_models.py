"""Local models end to end: the real reference model reads, loses needles under small budgets, runs through a
`gpu` worker with measured efficiency, and an out-of-memory cell is a result, not a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from kombu import Connection

from evalworkers import runner
from evalworkers.backends.local import LocalBackend, LocalModelConfig, load
from evalworkers.benchmark import HFTokenCounter
from evalworkers.evaluation import CellSpec, evaluate_samples, summarize
from evalworkers.kv.measure import full_cache_bytes
from evalworkers.tasks import start_submission
from leaderboard import rows
from leaderboard.models import CellStatus, ModelKind, Submission, SubmissionStatus
from tests.conftest import wait_for
from tests.factories import make_entry, make_submission, make_version

# Loads models. The reference model is bf16: on a CPU that emulates bf16 (AVX2 only) PyTorch runs it about 5x slower
# than where bf16 is native, so a test here can pass the default five minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

NEEDLE = {"haystack": "noise", "key_type": "words", "value_type": "numbers"}


@pytest.fixture
def reference(reference_models_dir: Path, settings):
    settings.EVAL_MODELS_DIR = reference_models_dir
    return load(LocalModelConfig(source="reference", models_dir=reference_models_dir))


def local_submission(*, methods: list[str], budgets: list[float], lengths: list[int], samples: int = 2,
                     slug: str = "loc") -> Submission:
    version = make_version(slug, lengths=lengths, samples_per_cell=samples, kv_methods=methods,
                           kv_budgets=budgets)
    version.tasks.update(params=NEEDLE)
    from leaderboard import versioning

    version = versioning.publish(version)
    entry = make_entry(kind=ModelKind.HUGGINGFACE, hf_repo="reference", endpoint_url="", api_model_name="")
    return make_submission(version=version, model=entry, kv_methods=methods, kv_budgets=budgets)


def test_the_reference_model_finds_needles_in_full_and_loses_some_under_a_small_budget(reference) -> None:
    spec = CellSpec(seed=7, task_key="niah_single_1", task_type="niah_single", params=NEEDLE, length=1024,
                    max_new_tokens=32, samples=3)
    counter = HFTokenCounter(reference.tokenizer)
    scores = {}
    for method, budget in [("full", 1.0), ("snapkv", 0.25), ("streaming_llm", 0.25)]:
        outcomes = evaluate_samples(spec, LocalBackend(reference, method, budget), counter, range(3), concurrency=1)
        summary = summarize(outcomes)
        assert summary.errors == 0, summary.top_error  # a lost needle is a wrong answer, not an error
        scores[(method, budget)] = summary.score
    assert scores[("full", 1.0)] >= 66
    assert min(scores.values()) < scores[("full", 1.0)], scores


@pytest.mark.django_db(transaction=True)
def test_a_local_submission_runs_through_a_gpu_worker_with_efficiency_figures(
        require_postgres, redis_url, start_worker, reference) -> None:
    sub = local_submission(methods=["full", "streaming_llm"], budgets=[1.0, 0.25], lengths=[512])
    worker = start_worker(redis_url, queues="gpu")
    with Connection(redis_url) as conn:
        start_submission.apply_async(args=[sub.pk], connection=conn, queue="gpu")
    done = lambda: Submission.objects.get(pk=sub.pk).status in SubmissionStatus.ended()  # noqa: E731
    wait_for(done, 300, "the local submission to end", worker.output)
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED, (sub.failure_reason, worker.output()[-3000:])
    assert sub.probe_result["kind"] == "local" and sub.probe_result["layers"] == 30
    assert "LlamaForCausalLM, 30 layers" in sub.probe_result["message"]
    cells = {(c.method, c.budget): c for c in sub.cells.all()}
    assert set(cells) == {("full", 1.0), ("streaming_llm", 0.25)}
    full, streaming = cells[("full", 1.0)], cells[("streaming_llm", 0.25)]
    for cell in cells.values():
        assert cell.status == CellStatus.COMPLETED and cell.samples_done == 2
        assert cell.prefill_s > 0 and cell.ttft_s > 0 and cell.peak_memory_bytes >= 0
    assert full.kv_bytes == full.kv_bytes_full and full.kept_fraction == 1.0
    assert streaming.kept_fraction == pytest.approx(0.25, rel=0.02) and streaming.physical is True
    assert streaming.kv_bytes < full.kv_bytes / 3


@pytest.mark.django_db
def test_an_out_of_memory_cell_is_recorded_as_oom_and_the_submission_completes(reference, settings,
                                                                               client) -> None:
    sub = local_submission(methods=["full", "streaming_llm"], budgets=[1.0, 0.25], lengths=[1024], samples=1)
    # A cap the backend enforces: half SmolLM2's full cache at 1K tokens (~23 MB in bf16, ~46 MB in float32), above
    # what a quarter of it plus the question holds.
    full_bytes = full_cache_bytes(reference.model.config, 1024, reference.model.dtype)
    settings.EVAL_LOCAL_MEMORY_LIMIT_BYTES = full_bytes // 2
    for cell_id in runner.start(sub.pk).cell_ids:
        runner.run_cell(cell_id)
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    full = sub.cells.get(method="full")
    fits = sub.cells.get(method="streaming_llm")
    assert full.status == CellStatus.OOM and "out of memory at 1,024 tokens" in full.error and "MiB" in full.error
    assert fits.status == CellStatus.COMPLETED and fits.score is not None
    rows.recompute(sub.pk)
    page = client.get(reverse("leaderboard:model", args=[sub.pk])).content.decode()
    assert ("Full cache runs out of memory at 1,024 tokens; StreamingLLM, 75% of middle tokens evicted, 25% of KV "
            "bytes fits") in page
    assert "Measured memory and speed" in page and "context only" in page


@pytest.mark.django_db
def test_a_local_submission_whose_window_is_too_short_fails_at_once(reference) -> None:
    sub = local_submission(methods=["full"], budgets=[1.0], lengths=[16384])
    assert runner.start(sub.pk).cell_ids == []
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.FAILED and "8,192-token window" in sub.failure_reason


@pytest.mark.django_db
def test_a_method_the_workers_cannot_run_fails_the_submission_before_any_model_loads() -> None:
    sub = local_submission(methods=["full", "duo_attention"], budgets=[1.0, 0.5], lengths=[512])
    assert runner.start(sub.pk).cell_ids == []
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.FAILED
    assert sub.failure_reason.startswith("duo_attention needs files that this deployment has not configured")
    assert not sub.cells.exists()


@pytest.mark.django_db
def test_a_model_that_is_not_there_fails_with_what_to_do(settings) -> None:
    sub = local_submission(methods=["full"], budgets=[1.0], lengths=[512])
    sub.model.hf_repo = "someone/not-in-the-cache"
    sub.model.save()
    assert runner.start(sub.pk).cell_ids == []
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.FAILED and "put the model in the local Hugging Face cache" in (
        sub.failure_reason)


@pytest.mark.django_db
def test_evaluate_local_prints_cells_with_efficiency_figures(reference, capsys) -> None:
    call_command("seed_versions")
    call_command("evaluate", "--local", "reference", "--version", "smoke", "--tasks", "niah_single_1",
                 "--lengths", "512", "--limit", "1", "--methods", "full,snapkv", "--budgets", "0.5", "--json")
    cells = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(c["method"], c["budget"]) for c in cells] == [("full", 1.0), ("snapkv", 0.5)]
    for key in ("score", "n", "errors", "prompt_tokens_mean", "kv_bytes", "kv_bytes_full", "kept_fraction",
                "physical", "peak_memory_bytes", "prefill_s", "ttft_s", "decode_tokens_per_s"):
        assert key in cells[1], key
    assert cells[1]["kept_fraction"] == pytest.approx(0.5, rel=0.02)


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), [
    (["--methods", "snapkv,h3o"], "--methods: unknown KV method 'h3o'"),
    (["--methods", "kv_quant", "--budgets", "0.5"], "--methods/--budgets: kv_quant cannot run at budget 0.5"),
    (["--budgets", "half"], "--budgets takes comma-separated fractions"),
])
def test_evaluate_local_names_the_bad_argument(args: list[str], message: str) -> None:
    call_command("seed_versions")
    with pytest.raises(CommandError, match=message):
        call_command("evaluate", "--local", "reference", "--version", "smoke", *args)
