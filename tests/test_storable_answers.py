"""Text that PostgreSQL cannot store (NUL, lone surrogates) never fails a sample, a cell or a submission: it is
replaced and counted before the write; a write that fails anyway is retried, and a message never promises a re-run
that does not happen."""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from evalworkers import runner
from evalworkers.evaluation import SampleOutcome
from evalworkers.storable import REPLACEMENT, storable_json, storable_outcome, storable_text
from leaderboard.models import CellStatus, SampleResult, Submission, SubmissionStatus
from tests.factories import endpoint_submission, run_inline
from tests.fake_openai import FakeOpenAI, fixed_answer
from tests.needle_reader import needle_reader

KEY = "sk-storable-test-key"
NASTY = "a\x00b\ud800c\x01\x1b[31m\x7fd"  # NUL, a lone surrogate, then control characters PostgreSQL accepts


def test_nul_and_lone_surrogates_are_replaced_and_counted_and_control_characters_kept() -> None:
    assert storable_text(NASTY) == (f"a{REPLACEMENT}b{REPLACEMENT}c\x01\x1b[31m\x7fd", 2)
    assert storable_text("plain ünïcode ✓") == ("plain ünïcode ✓", 0)
    assert storable_text("\udfff\ud83d\ude00") == (f"{REPLACEMENT}\U0001f600", 1)  # a pair is joined, not replaced


def test_strings_inside_json_are_made_storable_keys_included() -> None:
    value, count = storable_json({"k\x00": ["x\x00", {"y": "\ud800"}], "n": 3, "ok": None})
    assert value == {f"k{REPLACEMENT}": [f"x{REPLACEMENT}", {"y": REPLACEMENT}], "n": 3, "ok": None}
    assert count == 3


def outcome(**fields: object) -> SampleOutcome:
    values: dict[str, object] = {"index": 0, "prediction": "fine", "expected": ["fine"], "score": 100.0,
                                 "error": "", "target_prompt_tokens": 10, "prompt_tokens": 10, "output_tokens": 1,
                                 "latency_s": 0.1, "ttft_s": None, "metadata": {}}
    values.update(fields)
    return SampleOutcome(**values)  # type: ignore[arg-type]


def test_an_outcome_records_how_many_characters_were_replaced() -> None:
    clean = outcome()
    assert storable_outcome(clean) is clean
    fixed = storable_outcome(outcome(prediction=NASTY, metadata={"excerpt": "ctx\x00"}, expected=["\ud800"]))
    assert fixed.prediction == storable_text(NASTY)[0]
    assert fixed.expected == [REPLACEMENT] and fixed.metadata["excerpt"] == f"ctx{REPLACEMENT}"
    assert fixed.metadata["replaced_chars"] == 4


def submission_for(server: FakeOpenAI) -> Submission:
    return endpoint_submission(server.base_url, "store", api_key=KEY)


@pytest.fixture
def quick(settings, monkeypatch):
    settings.EVAL_BACKOFF_BASE_S, settings.EVAL_BACKOFF_CAP_S, settings.EVAL_MAX_RETRIES = 0.01, 0.05, 1
    settings.EVAL_PROBE_RETRY_S = 0
    monkeypatch.setattr(runner, "STORE_BACKOFF_S", 0.0)
    return settings


def test_answers_with_nul_surrogates_and_control_characters_store_and_display_on_postgresql(
        require_postgres, quick, client) -> None:
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=fixed_answer(NASTY), max_model_len=32768) as fake:
        sub = run_inline(submission_for(fake))
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    results = list(SampleResult.objects.filter(cell__submission=sub))
    assert len(results) == 4
    for result in results:
        assert result.error == "" and result.score == 0.0  # a wrong answer, stored and scored, not a failure
        assert result.prediction == storable_text(NASTY)[0]
        assert result.metadata["replaced_chars"] == 2
    page = client.get(f"/models/{sub.pk}/")
    assert page.status_code == 200
    assert f"a{REPLACEMENT}b{REPLACEMENT}c" in page.content.decode()
    api = client.get(f"/api/v1/submissions/{sub.pk}").json()
    assert api["status"] == "completed"


@pytest.mark.django_db
def test_a_batch_whose_write_fails_twice_is_retried_and_nothing_is_lost(quick, monkeypatch) -> None:
    real, calls = runner._store, []

    def flaky(cell, outcomes):
        calls.append(len(outcomes))
        if len(calls) <= 2:
            raise DatabaseError("could not serialize access")
        real(cell, outcomes)

    monkeypatch.setattr(runner, "_store", flaky)
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=needle_reader(0), max_model_len=32768) as fake:
        quick.EVAL_CONCURRENCY = 4
        sub = run_inline(submission_for(fake))
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    cell = sub.cells.get()
    assert cell.samples_done == 4 and cell.samples_errored == 0 and cell.score == 100.0
    assert len(calls) >= 3


@pytest.mark.django_db
def test_one_answer_that_cannot_be_stored_becomes_an_error_sample_and_the_others_are_kept(quick, monkeypatch) -> None:
    real = runner._store

    def refuses_index_2(cell, outcomes):
        if any(o.index == 2 and o.score is not None for o in outcomes):
            raise DatabaseError("invalid byte sequence")
        real(cell, outcomes)

    monkeypatch.setattr(runner, "_store", refuses_index_2)
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=needle_reader(0), max_model_len=32768) as fake:
        sub = run_inline(submission_for(fake))
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    cell = sub.cells.get()
    assert cell.samples_done == 4 and cell.samples_errored == 1 and cell.score == 100.0
    lost = cell.samples.get(index=2)
    assert lost.score is None and "could not be stored" in lost.error


@pytest.mark.django_db
def test_a_cell_whose_answers_cannot_be_stored_at_all_fails_saying_so_without_promising_a_rerun(
        quick, monkeypatch) -> None:
    def refuses(cell, outcomes):
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(runner, "_store", refuses)
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=needle_reader(0), max_model_len=32768) as fake:
        sub = run_inline(submission_for(fake))
    cell = sub.cells.get()
    assert cell.status == CellStatus.FAILED
    assert "could not store" in cell.error and "after 3 tries" in cell.error
    assert "not re-run by itself" in cell.error and "will be re-run" not in cell.error
    assert sub.status == SubmissionStatus.FAILED and "will be re-run" not in sub.failure_reason
