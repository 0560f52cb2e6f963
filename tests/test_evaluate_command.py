"""`manage.py evaluate` runs the same evaluation synchronously against an endpoint and stores nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from leaderboard.models import Cell, SampleResult, Submission
from tests.factories import make_version
from tests.fake_openai import FakeOpenAI
from tests.needle_reader import expected_score, needle_reader

pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    with FakeOpenAI(models=("fake-model",), api_key="sk-cli", answer=needle_reader(3)) as fake:
        yield fake


def evaluate(*args: str) -> str:
    out = StringIO()
    call_command("evaluate", *args, stdout=out)
    return out.getvalue()


def test_json_output_lists_every_cell_with_scores_and_stores_nothing(server, monkeypatch) -> None:
    make_version("cli", publish=True, lengths=[512, 1024], samples_per_cell=5)
    monkeypatch.setenv("CLI_KEY", "sk-cli")
    cells = json.loads(evaluate("--endpoint", server.base_url, "--model", "fake-model", "--api-key-env",
                                "CLI_KEY", "--version", "cli", "--lengths", "512", "--limit", "3", "--json"))
    assert [(c["task"], c["length"], c["method"], c["budget"], c["n"], c["errors"]) for c in cells] == [
        ("niah_0", 512, "full", 1.0, 3, 0)]
    assert cells[0]["prompt_tokens_mean"] > 0
    answered = [r.body for r in server.generation_requests]
    assert len(answered) >= 3
    assert not (Submission.objects.exists() or Cell.objects.exists() or SampleResult.objects.exists())
    assert 0.0 <= cells[0]["score"] <= 100.0


def test_an_operator_checks_a_localhost_endpoint_even_where_the_web_refuses_private_ones(
        server, monkeypatch, settings) -> None:
    settings.ALLOW_PRIVATE_ENDPOINTS = False  # the web form and workers would refuse 127.0.0.1 here
    make_version("cli3", publish=True, lengths=[512], samples_per_cell=2)
    monkeypatch.setenv("CLI_KEY", "sk-cli")
    cells = json.loads(evaluate("--endpoint", server.base_url, "--model", "fake-model", "--api-key-env",
                                "CLI_KEY", "--version", "cli3", "--json"))
    assert cells[0]["n"] == 2 and cells[0]["errors"] == 0


def test_the_score_matches_what_the_model_answered(server, monkeypatch) -> None:
    make_version("cli2", publish=True, lengths=[512], samples_per_cell=6)
    monkeypatch.setenv("CLI_KEY", "sk-cli")
    server.reset_stats()
    cells = json.loads(evaluate("--endpoint", server.base_url, "--model", "fake-model", "--api-key-env",
                                "CLI_KEY", "--version", "cli2", "--json"))
    values = []
    for request in server.generation_requests[-6:]:
        content = request.body["messages"][0]["content"]
        key = re.search(r"special magic \w+ for (\S+?) mentioned", content).group(1)
        values.append(re.search(rf"special magic \w+ for {re.escape(key)} is: (\S+?)\.", content).group(1))
    assert cells[0]["score"] == pytest.approx(expected_score(values, 3))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "nope"], "--version 'nope' is not a published version"),
        (["--version", "cli", "--tasks", "zzz"], "--tasks: zzz not in cli"),
        (["--version", "cli", "--lengths", "4k"], "--lengths takes comma-separated whole numbers"),
        (["--version", "cli", "--limit", "0"], "--limit must be a positive"),
        (["--version", "cli", "--api-key-env", "UNSET_VAR_FOR_TEST"], "UNSET_VAR_FOR_TEST is not set"),
    ],
)
def test_bad_arguments_get_a_message_naming_the_argument(server, args, message) -> None:
    make_version("cli", publish=True)
    with pytest.raises(CommandError) as err:
        evaluate("--endpoint", server.base_url, "--model", "fake-model", *args)
    assert message in str(err.value)


def test_a_failing_endpoint_is_reported_without_running_samples(server) -> None:
    make_version("cli", publish=True)
    with pytest.raises(CommandError, match="pre-flight"):
        evaluate("--endpoint", server.base_url, "--model", "unknown-model", "--version", "cli")


@pytest.mark.parametrize("migrated", [False, True], ids=["unmigrated", "unseeded"])
def test_a_database_without_versions_gets_the_commands_that_set_it_up(tmp_path, migrated) -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
    manage = [sys.executable, str(root / "manage.py")]
    if migrated:
        subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=root, check=True, capture_output=True)
    done = subprocess.run([*manage, "evaluate", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m",
                           "--version", "v2"], env=env, cwd=root, capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    expected = "seed_versions" if migrated else "has no benchmark tables yet"
    assert expected in done.stderr, done.stderr
