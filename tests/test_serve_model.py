"""`manage.py serve_model` puts a real local model behind the OpenAI API, and the endpoint path evaluates it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kombu import Connection

from evalworkers.tasks import start_submission
from leaderboard.models import CellStatus, Submission, SubmissionStatus
from tests.conftest import ROOT, child_env, free_port, wait_for
from tests.factories import make_entry, make_submission, make_version

pytestmark = pytest.mark.slow  # starts processes

NEEDLE = {"haystack": "noise", "key_type": "words", "value_type": "numbers"}


@pytest.fixture
def served(reference_models_dir: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "serve_model.log"
    env = {k: v for k, v in child_env().items() if k != "DATABASE_URL"}  # serving needs no database
    proc = subprocess.Popen([sys.executable, "manage.py", "serve_model", "--local", "reference", "--port", str(port)],
                            cwd=ROOT, env={**env, "EVAL_MODELS_DIR": str(reference_models_dir)},
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 120, "serve_model to answer", log.read_text)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_model_answers_with_the_models_real_output(served: str) -> None:
    models = httpx.get(f"{served}/models", timeout=5).json()
    assert models["data"][0]["id"] == "smollm2-135m-instruct" and models["data"][0]["max_model_len"] == 8192
    assert models["data"][0]["dtype"] == "bfloat16" and models["data"][0]["device"] == "cpu"  # auto: the checkpoint's
    body = {"model": "smollm2-135m-instruct", "max_tokens": 12, "temperature": 0,
            "messages": [{"role": "user", "content": "The secret code is 48213. What is the secret code?"}]}
    answer = httpx.post(f"{served}/chat/completions", json=body, timeout=120).json()
    assert "48213" in answer["choices"][0]["message"]["content"]
    assert answer["usage"]["prompt_tokens"] > 10 and answer["usage"]["completion_tokens"] > 0
    wrong = httpx.post(f"{served}/chat/completions", json={**body, "model": "gpt-4"}, timeout=10)
    assert wrong.status_code == 404 and "does not exist" in wrong.json()["error"]["message"]
    bad = httpx.post(f"{served}/completions", json={"prompt": 3}, timeout=10)
    assert bad.status_code == 400 and "prompt must be a string" in bad.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_submission_against_the_served_model_completes_through_the_api_queue(
        require_postgres, redis_url, start_worker, served: str) -> None:
    version = make_version("srv", publish=False, lengths=[512], samples_per_cell=2)
    version.tasks.update(params=NEEDLE)
    from leaderboard import versioning

    version = versioning.publish(version)
    entry = make_entry(endpoint_url=served, api_model_name="smollm2-135m-instruct")
    sub = make_submission(version=version, model=entry)
    worker = start_worker(redis_url, queues="api", extra_env={"EVAL_CONCURRENCY": "2"})
    with Connection(redis_url) as conn:
        start_submission.apply_async(args=[sub.pk], connection=conn)
    wait_for(lambda: Submission.objects.get(pk=sub.pk).status in SubmissionStatus.ended(), 300,
             "the endpoint submission to end", worker.output)
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED, (sub.failure_reason, worker.output()[-3000:])
    cell = sub.cells.get()
    assert cell.status == CellStatus.COMPLETED and cell.samples_done == 2 and cell.samples_errored == 0
    assert cell.score is not None and cell.prompt_tokens_mean > 400  # counted by the model's own tokenizer
    assert cell.ttft_s is not None  # streamed
