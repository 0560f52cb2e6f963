"""The production configuration (.env.example, as docker compose uses it) passes Django's deployment checks:
HTTPS redirect, HSTS, secure cookies and proxy headers come from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import env as config_env
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # starts `manage.py check --deploy` processes

CHECK_DEPLOY = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """.env.example's values, with real keys where it says change-me (as an operator fills it in)."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    values.update(SECRET_KEY=config_env.new_secret_key(), FIELD_ENCRYPTION_KEY=config_env.new_fernet_key())
    base = {k: v for k, v in os.environ.items() if k not in values and k not in ("DATABASE_URL", "REDIS_URL")}
    return {**base, **values, "VAR_DIR": str(tmp_path / "var"), **overrides}


def check_deploy(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(CHECK_DEPLOY, cwd=ROOT, env=production_env(tmp_path, **overrides), capture_output=True,
                          text=True, timeout=120)


def test_the_production_configuration_passes_the_deployment_checks(tmp_path: Path) -> None:
    result = check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_https_the_deployment_checks_name_what_is_missing(tmp_path: Path) -> None:
    result = check_deploy(tmp_path, HTTPS="false")
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):  # HSTS, redirect, cookies
        assert check in result.stderr, result.stderr


def test_https_settings_follow_the_environment(tmp_path: Path) -> None:
    code = ("import django; from django.conf import settings; django.setup(); "
            "print(settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS, settings.SESSION_COOKIE_SECURE, "
            "settings.CSRF_COOKIE_SECURE, settings.SECURE_PROXY_SSL_HEADER[0], settings.SECURE_HSTS_PRELOAD)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=production_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings",
                                            SECURE_HSTS_SECONDS="600", SECURE_HSTS_PRELOAD="true"))
    assert run.stdout.split() == ["True", "600", "True", "True", "HTTP_X_FORWARDED_PROTO", "True"], run.stderr


def test_compose_turns_https_on_unless_the_env_file_says_otherwise() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["x-app"]["environment"]
    assert environment["HTTPS"] == "${HTTPS:-true}" and environment["DEBUG"] == "${DEBUG:-false}"


def test_health_checks_over_plain_http_are_not_redirected(tmp_path: Path) -> None:
    code = ("import django; django.setup(); from django.test import Client; "
            "c = Client(); print(c.get('/healthz').status_code, c.get('/').status_code)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=production_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings",
                                            ALLOWED_HOSTS="testserver"))
    assert run.stdout.split()[-2:][1] == "301", run.stdout + run.stderr
