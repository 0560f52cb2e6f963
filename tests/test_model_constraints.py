"""The database itself refuses rows that would make a score ambiguous or meaningless."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from leaderboard.models import Cell, ModelEntry, SampleResult, Submission, SubmissionStatus
from tests.factories import make_submission

pytestmark = pytest.mark.django_db


def make_cell(sub: Submission, **fields: object) -> Cell:
    values: dict[str, object] = {"task": sub.version.tasks.first(), "length": 512, "method": "full", "budget": 1.0}
    values.update(fields)
    return Cell.objects.create(submission=sub, **values)


def refused(fn) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


def test_one_cell_per_submission_task_length_method_budget() -> None:
    sub = make_submission()
    make_cell(sub)
    refused(lambda: make_cell(sub))
    make_cell(sub, budget=0.5)  # another grid point is fine
    assert sub.cells.count() == 2


@pytest.mark.parametrize("fields", [{"length": 0}, {"budget": 0.0}, {"budget": 1.5}, {"budget": -0.1},
                                    {"score": 101.0}, {"samples_done": 5, "samples_total": 4}])
def test_cell_check_constraints(fields: dict) -> None:
    sub = make_submission()
    refused(lambda: make_cell(sub, **fields))


def test_one_result_per_cell_and_sample_index() -> None:
    cell = make_cell(make_submission())
    SampleResult.objects.create(cell=cell, index=0, score=100.0)
    refused(lambda: SampleResult.objects.create(cell=cell, index=0, score=0.0))


def test_a_sample_is_either_scored_or_errored() -> None:
    cell = make_cell(make_submission())
    refused(lambda: SampleResult.objects.create(cell=cell, index=1, score=None))
    refused(lambda: SampleResult.objects.create(cell=cell, index=2, score=50.0, error="timeout"))
    SampleResult.objects.create(cell=cell, index=3, score=None, error="timeout after 3 attempts")
    assert cell.samples.count() == 1


def test_an_ended_submission_cannot_keep_an_api_key() -> None:
    sub = make_submission(api_key="sk-secret")
    refused(lambda: Submission.objects.filter(pk=sub.pk).update(status=SubmissionStatus.COMPLETED))


def test_an_endpoint_entry_needs_a_url_and_a_model_name() -> None:
    refused(lambda: ModelEntry.objects.create(display_name="x", endpoint_url="", api_model_name="m"))
    refused(lambda: ModelEntry.objects.create(display_name="x", kind="huggingface", hf_repo=""))
    refused(lambda: ModelEntry.objects.create(display_name="x", endpoint_url="http://h/v1", api_model_name="m",
                                              claimed_context=0))
