"""One context, many questions (the shared-context mode): a task's turns ask about other needles of one context; an
endpoint gets them as chat turns and its prefix reuse shows as a time-to-first-token ratio on the model page; each
turn is its own sample row; a worker killed mid-conversation resumes at the first missing turn and repeats none.
The reference model's side (one compressed cache for every turn) is in test_shared_context_local.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from evalworkers import recovery, runner
from evalworkers.benchmark import SpecError, generate_sample, validate_task
from evalworkers.evaluation import CellSpec
from leaderboard import charts, shared_context
from leaderboard.models import Cell, CellStatus, SampleResult, Submission, SubmissionStatus
from tests.benchmark_helpers import bpe_counter
from tests.conftest import ROOT, child_env, wait_for
from tests.factories import make_entry, make_submission, make_version
from tests.fake_openai import FakeCall, FakeOpenAI

KEY = "sk-shared-context-0015"
SHARED = {"haystack": "prose", "key_type": "words", "value_type": "numbers", "num_keys": 4, "turns": 3}
QUESTION = re.compile(r"special magic \w+ for (\S+?) mentioned")


def last_question_reader(call: FakeCall) -> str:
    """Answers the conversation's last question from the context, as a model that reads it would."""
    asked = QUESTION.findall(call.prompt)
    if not asked:
        return "Ready."
    key = re.escape(asked[-1])
    found = re.search(rf"special magic \w+ for {key} is: (\S+?)\.(?:\s|$)", call.prompt)
    return found.group(1) if found else "The text does not say."


def shared_submission(server: FakeOpenAI, slug: str, *, samples: int) -> Submission:
    version = make_version(slug, lengths=[512], samples_per_cell=samples)
    version.tasks.update(key="sc_niah", task_type="niah_multikey", params=validate_task("niah_multikey", SHARED),
                         max_new_tokens=16)
    from leaderboard import versioning

    version = versioning.publish(version)
    return make_submission(version=version, api_key=KEY,
                           model=make_entry(endpoint_url=server.base_url, api_model_name="fake-model"))


@pytest.fixture
def quick_probe(settings):
    settings.EVAL_PROBE_TIMEOUT_S = 5
    settings.EVAL_PROBE_RETRY_S = 0
    settings.EVAL_STREAM = True


# --- the turns of one context -------------------------------------------------------------------------------------

def test_each_turn_asks_about_another_needle_of_the_same_context() -> None:
    sample = generate_sample(seed=3, task_key="sc", task_type="niah_multikey", params=SHARED, length=600, index=0,
                             counter=bpe_counter())
    assert sample.turns == 3
    turns = [sample.at_turn(t) for t in (1, 2, 3)]
    assert len({t.answers[0] for t in turns}) == 3 and len({t.question for t in turns}) == 3
    for turn in turns:
        assert turn.context == sample.context and turn.metric == "string_match_all"
        key = QUESTION.search(turn.question).group(1)
        assert f"for {key} is: {turn.answers[0]}." in sample.context  # its own needle is in the one context
    assert [t.metadata.get("turn", 1) for t in turns] == [1, 2, 3]
    assert turns[1].metadata["depth_percent"] != turns[0].metadata["depth_percent"]


def test_every_turns_conversation_extends_the_one_before_with_the_expected_reply() -> None:
    sample = generate_sample(seed=3, task_key="sc", task_type="niah_multikey", params=SHARED, length=600, index=1,
                             counter=bpe_counter())
    chat = [sample.conversation_messages(t) for t in (1, 2, 3)]
    assert chat[0] == sample.as_messages()
    assert chat[1][:1] == chat[0][:1] and chat[1][1]["content"] == f"{sample.answer_prefix} {sample.answers[0]}."
    assert chat[1][2] == {"role": "user", "content": sample.at_turn(2).question}
    assert chat[2][:3] == chat[1][:3] and len(chat[2]) == len(chat[1]) + 2
    prompts = [sample.conversation_prompt(t) for t in (1, 2, 3)]
    assert prompts[0] == sample.as_completion_prompt()
    assert prompts[1].startswith(prompts[0]) and prompts[2].startswith(prompts[1])
    assert prompts[2].endswith(sample.at_turn(3).answer_prefix)


def test_a_conversation_marks_only_the_first_turns_context_as_compressible() -> None:
    spec = CellSpec(seed=3, task_key="sc", task_type="niah_multikey", params=SHARED, length=600, max_new_tokens=16,
                    samples=1)
    sample = spec.sample(0, bpe_counter())
    conversation = spec.conversation(sample, {2, 3})
    assert spec.turns == 3 and conversation.needed == frozenset({2, 3})
    first = conversation.turns[0]
    assert first.messages[-2]["content"][:first.compress_until].endswith(sample.context)
    assert [t.compress_until for t in conversation.turns[1:]] == [None, None]


def test_a_mixed_context_asks_retrieval_tracing_and_aggregation_in_turn_and_never_repeats_a_question() -> None:
    sample = generate_sample(seed=5, task_key="mix", task_type="mixed_shared_context", params={"turns": 6},
                             length=900, index=2, counter=bpe_counter())
    turns = [sample.at_turn(t) for t in range(1, 7)]
    assert [t.metadata["kind"] for t in turns] == ["retrieval", "tracing", "aggregation"] * 2
    assert len({t.question for t in turns}) == 6
    retrieved = [t.answers[0] for t in turns if t.metadata["kind"] == "retrieval"]
    assert len(set(retrieved)) == 2 and all(f"is: {v}." in sample.context for v in retrieved)
    eldest = [t.answers[0] for t in turns if t.metadata["kind"] == "tracing"]
    assert len(set(eldest)) == 2 and all(name in sample.context for name in eldest)
    words, numbers = (t.answers for t in turns if t.metadata["kind"] == "aggregation")
    assert len(words) == len(numbers) == 4 and all(f"for {w} is:" in sample.context for w in words)
    assert set(retrieved) < set(numbers)
    with pytest.raises(SpecError, match="at most 6"):
        validate_task("mixed_shared_context", {"turns": 7})


def test_more_turns_than_needles_is_refused_naming_the_parameter() -> None:
    with pytest.raises(SpecError) as refused:
        validate_task("niah_multikey", {**SHARED, "turns": 5})
    assert refused.value.field == "params.turns" and "only 4 needles" in str(refused.value)
    with pytest.raises(SpecError, match="only 2"):
        validate_task("variable_tracking", {"num_chains": 2, "turns": 3})
    with pytest.raises(SpecError, match="at most 16"):
        validate_task("ancestral_trace", {"turns": 17})


def test_one_question_tasks_keep_their_params_and_samples_as_before() -> None:
    assert "turns" not in validate_task("niah_multikey", {"num_keys": 4, "turns": 1})
    sample = generate_sample(seed=3, task_key="k", task_type="niah_multikey", params={}, length=600, index=0,
                             counter=bpe_counter())
    assert sample.turns == 1 and "followups" not in sample.to_dict()


# --- an endpoint: chat turns, stored per turn, prefix reuse measured and shown ----------------------------------------

def test_an_endpoint_answers_each_turn_as_a_chat_request_and_its_prefix_reuse_shows_as_a_ttft_ratio(
        db, client, quick_probe) -> None:
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=last_question_reader, max_model_len=8192,
                    prefill_s_per_kchar=0.15, prefix_cache=True) as server:
        sub = shared_submission(server, "scend", samples=3)
        for cell_id in runner.start(sub.pk).cell_ids:
            runner.run_cell(cell_id)
        answered = [r for r in server.generation_requests  # the samples' turns, not the probe's or sizing's
                    if (r.body or {}).get("max_tokens", 0) > 1 and QUESTION.search(str(r.body.get("messages")))]
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.COMPLETED, sub.failure_reason
    cell = Cell.objects.get(submission=sub)
    rows = list(cell.samples.order_by("index", "turn").values_list("index", "turn", "score"))
    assert [(i, t) for i, t, _ in rows] == [(i, t) for i in range(3) for t in (1, 2, 3)]
    assert cell.samples_total == cell.samples_done == 9
    # Each turn was one chat request holding the conversation so far: turn t sends t user messages.
    assert [sum(m["role"] == "user" for m in r.body["messages"]) for r in answered] == [1, 2, 3] * 3
    assert cell.first_turn_score == cell.later_turns_score == 100.0
    ratio = cell.second_turn_ttft_s / cell.first_turn_ttft_s
    print(f"endpoint with a prefix cache: turn 1 TTFT {cell.first_turn_ttft_s:.3f} s, turn 2 "
          f"{cell.second_turn_ttft_s:.3f} s, ratio {ratio:.2f}")
    assert ratio < 0.5  # turn 2 read only what followed the cached prefix
    page = client.get(reverse("leaderboard:model", args=[sub.pk])).content.decode()
    assert "One context, many questions" in page and "Turn 2 / turn 1" in page
    assert f"{ratio:.2f}" in page and "measured" in page
    assert "100.0 → 100.0" in page and "Score by turn, one context read once" in page


def test_the_drop_per_method_is_the_first_turns_mean_minus_the_later_turns_full_cache_first() -> None:
    cells = [
        {"method": "snapkv", "budget": 0.5, "length": 512, "first_turn_score": 80.0, "later_turns_score": 40.0,
         "kv_bytes": 50, "kv_bytes_after_turns": 70},
        {"method": "snapkv", "budget": 0.5, "length": 1024, "first_turn_score": 60.0, "later_turns_score": None,
         "kv_bytes": 150, "kv_bytes_after_turns": None},
        {"method": "full", "budget": 1.0, "length": 512, "first_turn_score": 90.0, "later_turns_score": 90.0,
         "kv_bytes": 100, "kv_bytes_after_turns": 140},
    ]
    turn_rows = [{"method": "snapkv", "budget": 0.5, "turn": t, "score": s} for t, s in ((1, 80.0), (2, 50.0),
                                                                                          (2, 30.0), (3, None))]
    drops = shared_context.turn_drops(cells, turn_rows, [512, 1024])
    assert [(d.method, d.budget) for d in drops] == [("full", 1.0), ("snapkv", 0.5)]
    snap = drops[1]
    assert [(x.length, x.first, x.later, x.drop) for x in snap.lengths] == [(512, 80.0, 40.0, 40.0),
                                                                            (1024, 60.0, None, None)]
    assert (snap.first, snap.later, snap.drop) == (70.0, 40.0, 30.0)  # a length without later turns counts once
    assert (snap.kv_bytes, snap.kv_bytes_after_turns) == (100.0, 70.0)
    assert snap.scores_by_turn == {1: 80.0, 2: 40.0}
    figure = charts.turn_figure([{"label": d.label, "scores_by_turn": d.scores_by_turn} for d in drops])
    assert [list(trace.x) for trace in figure.data] == [[1, 2], [1, 2]]
    assert list(figure.data[1].y) == [80.0, 40.0] and list(figure.data[0].y) == [None, None]


# --- a worker killed mid-conversation -----------------------------------------------------------------------------

RUN_CELL = ("import django, sys; django.setup(); from evalworkers import runner; "
            "runner.run_cell(int(sys.argv[1]), worker='doomed@host')")


@pytest.mark.slow  # a worker process is started and killed
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_conversation_resumes_at_the_first_missing_turn_and_repeats_none(
        require_postgres, quick_probe) -> None:
    reached, release = threading.Event(), threading.Event()
    answers = []

    def answer(call: FakeCall) -> str:
        if (call.max_tokens or 0) > 1 and QUESTION.search(call.prompt):
            answers.append(call)
            if len(answers) == 5:  # conversation 1, turn 2: the worker is killed while it waits for this
                reached.set()
                release.wait(30)
        return last_question_reader(call)

    # Each answer takes longer than the runner's flush interval, so every answered turn is stored before the next.
    with FakeOpenAI(models=("fake-model",), api_key=KEY, answer=answer, max_model_len=8192,
                    latency_s=runner.FLUSH_EVERY_S + 0.2) as server:
        sub = shared_submission(server, "sckill", samples=3)
        cell_id = runner.start(sub.pk).cell_ids[0]
        answers.clear()  # the probe's
        env = child_env(DJANGO_SETTINGS_MODULE="config.settings", EVAL_PROBE_RETRY_S="0")
        worker = subprocess.Popen([sys.executable, "-c", RUN_CELL, str(cell_id)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert reached.wait(60), "the worker never reached conversation 1's second turn"
            wait_for(lambda: SampleResult.objects.filter(cell_id=cell_id).count() == 4, 5,
                     "conversation 0's turns and conversation 1's first stored")
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
        release.set()
        before = set(SampleResult.objects.filter(cell_id=cell_id).values_list("index", "turn"))
        assert before == {(0, 1), (0, 2), (0, 3), (1, 1)}
        # The worker's lease goes stale; the scheduler's recovery hands the cell on and a new run takes it.
        Cell.objects.filter(pk=cell_id).update(
            heartbeat_at=timezone.now() - timedelta(seconds=settings.WORKER_LOST_AFTER_S + 5))
        assert [h.task_id for h in recovery.lost_cells()] == [cell_id]
        asked_before = len(answers)
        runner.run_cell(cell_id, worker="second@host")
        resumed = answers[asked_before:]
    rows = list(SampleResult.objects.filter(cell_id=cell_id).values_list("index", "turn", "expected"))
    assert sorted((i, t) for i, t, _ in rows) == [(i, t) for i in range(3) for t in (1, 2, 3)]  # none twice
    by_value = {expected[0]: (i, t) for i, t, expected in rows}
    asked_again = sorted(by_value[last_question_reader(call)] for call in resumed)
    assert asked_again == sorted(set(by_value.values()) - before)  # exactly the missing turns, each once
    assert Cell.objects.get(pk=cell_id).status == CellStatus.COMPLETED
