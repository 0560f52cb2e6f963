"""Settings come from the environment; bad values stop start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts processes

ROOT = Path(__file__).resolve().parent.parent
PRINT_SETTINGS = (
    "import django; from django.conf import settings; django.setup(); "
    "print(settings.DATABASES['default']['ENGINE']); print(settings.CELERY_BROKER_URL)"
)


def run_with_env(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEY",
                         "DEBUG")}
    base.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run([sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=base, capture_output=True,
                          text=True, timeout=60)


def test_nothing_set_gives_sqlite_and_filesystem_broker_under_var(tmp_path: Path) -> None:
    result = run_with_env(tmp_path)
    assert result.returncode == 0, result.stderr
    engine, broker = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://"
    assert (tmp_path / "var" / "broker" / "queue").is_dir()
    assert (tmp_path / "var" / "secret_key").exists()


def test_generated_secrets_survive_a_restart(tmp_path: Path) -> None:
    run_with_env(tmp_path)
    first = (tmp_path / "var" / "field_encryption_key").read_text()
    run_with_env(tmp_path)
    assert (tmp_path / "var" / "field_encryption_key").read_text() == first


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mongodb://127.0.0.1/x"),
        ("DATABASE_URL", "not a url at all"),
        ("DATABASE_URL", "postgres://127.0.0.1:5432"),
        ("DEBUG", "maybe"),
        ("FIELD_ENCRYPTION_KEY", "too-short"),
        ("CELERY_BROKER_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "127.0.0.1:6379"),
    ],
)
def test_bad_value_fails_start_up_naming_the_variable(tmp_path: Path, name: str, value: str) -> None:
    result = run_with_env(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.splitlines()[-1]


def test_postgres_url_is_used_when_given(tmp_path: Path) -> None:
    result = run_with_env(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/longctx",
                          REDIS_URL="redis://127.0.0.1:6379/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "redis://127.0.0.1:6379/0"]
