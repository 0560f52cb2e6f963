"""Shared fixtures: the real services, real Celery worker processes, and the three users.

Tests that need PostgreSQL or Redis skip with the reason on the embedded default, and fail under CI.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import hypothesis
import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Property tests explore new examples on every local run, but CI replays a fixed set: a landing must not
# depend on the luck of the draw. (Examples found locally land in the .hypothesis database for replay.)
hypothesis.settings.register_profile("ci", derandomize=True)
if IN_CI:
    hypothesis.settings.load_profile("ci")


# The fast tier (`make test-fast`: pytest -m "not slow") leaves out every test that starts a worker or server
# process, loads a model or drives a browser; those are marked here by the fixtures they use, and by hand
# (`pytestmark = pytest.mark.slow`) in the files that start processes themselves.
SLOW_FIXTURES = frozenset({"start_worker", "start_beat", "reference", "reference_models_dir", "tiny_llama",
                           "live_server", "browser"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def missing_service(reason: str) -> None:
    """Skip outside CI (with the reason); fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"CI requires this service: {reason}")
    pytest.skip(reason)


def redis_broker_url(db: int | None = None) -> str | None:
    # TEST_REDIS_DB lets two test runs on one machine keep their queues apart.
    db = int(os.environ.get("TEST_REDIS_DB", "14")) if db is None else db
    raw = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""
    if not raw.startswith("redis://"):
        return None
    base = raw.rsplit("/", 1)[0] if raw.count("/") > 2 else raw
    return f"{base}/{db}"


@pytest.fixture
def require_postgres(db) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: set DATABASE_URL or start it on 127.0.0.1:5432")


@pytest.fixture
def redis_url() -> str:
    url = redis_broker_url()
    if url is None:
        missing_service("needs Redis: set REDIS_URL or start it on 127.0.0.1:6379")
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing_service(f"Redis at {url} does not answer: {exc}")
    client.flushdb()  # a private db number: leftovers from an earlier run must not be consumed
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url_of_test_db() -> str:
    """The URL of the database the test process writes to, for child processes to share."""
    from django.db import connection

    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or "postgres"
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{cfg.get('HOST') or '127.0.0.1'}:{cfg.get('PORT') or 5432}/{cfg['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "PYTEST_"))}
    env.update(
        DATABASE_URL=database_url_of_test_db(),
        SECRET_KEY=settings.SECRET_KEY,
        FIELD_ENCRYPTION_KEY=",".join(settings.FIELD_ENCRYPTION_KEYS),
        PYTHONPATH=str(ROOT),
        ALLOW_PRIVATE_ENDPOINTS="true",  # the fake model servers listen on 127.0.0.1
    )
    env.pop("REDIS_URL", None)
    env.update(overrides)
    return env


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen, name: str, log: Path) -> None:
        self.proc, self.name, self.log = proc, name, log

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start a real `celery worker` process on the given broker, sharing the test database."""
    started: list[WorkerProcess] = []

    def start(broker_url: str, *, queues: str = "api,gpu", extra_env: dict[str, str] | None = None,
              concurrency: int = 1) -> WorkerProcess:
        name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        log = tmp_path / f"{name}.log"
        env = child_env(CELERY_BROKER_URL=broker_url, **(extra_env or {}))
        cmd = [sys.executable, "-m", "celery", "-A", "evalworkers.celery", "worker", "-Q", queues,
               "--concurrency", str(concurrency), "--pool", "solo" if concurrency == 1 else "prefork",
               "-n", name, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"]
        handle = log.open("w")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        worker = WorkerProcess(proc, name, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def start_beat(tmp_path: Path) -> Iterator[Callable[[str], WorkerProcess]]:
    """Start the real scheduler (`celery beat`) with the schedule from settings, on the given broker."""
    started: list[WorkerProcess] = []

    def start(broker_url: str) -> WorkerProcess:
        log = tmp_path / "beat.log"
        cmd = [sys.executable, "-m", "celery", "-A", "evalworkers.celery", "beat", "--schedule",
               str(tmp_path / "celerybeat-schedule"), "-l", "INFO"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(CELERY_BROKER_URL=broker_url),
                                stdout=log.open("w"), stderr=subprocess.STDOUT)
        beat = WorkerProcess(proc, "beat", log)
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.stop()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, on_fail: Callable[[], str] = str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{on_fail()}")


def verified_user(django_user_model, username: str, email: str, password: str):
    """A submitter whose e-mail address is confirmed (leaderboard/verification.py), as most tests need."""
    from leaderboard.models import VerifiedAddress
    from leaderboard.verification import canonical_address

    user = django_user_model.objects.create_user(username, email, password)
    VerifiedAddress.objects.create(user=user, email=email, canonical=canonical_address(email))
    return user


@pytest.fixture
def alice(django_user_model):
    return verified_user(django_user_model, "alice", "alice@example.org", "alice-password-1")


@pytest.fixture
def bob(django_user_model):
    return verified_user(django_user_model, "bob", "bob@example.org", "bob-password-1")


@pytest.fixture
def charlie(django_user_model):
    return django_user_model.objects.create_superuser("charlie", "charlie@example.org", "charlie-password-1")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Test users' passwords are hashed with a fast hasher (Django's advice for tests); what a password does
    (log in, change, reset) does not depend on the hasher, and production keeps Django's default."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True, scope="session")
def _publish_to_memory_by_default() -> None:
    """In-process publishes go to an in-memory broker; tests that need a real one pass their own connection."""
    from evalworkers.celery import app

    app.conf.broker_url = "memory://"


@pytest.fixture(autouse=True)
def _private_endpoints_allowed(settings) -> None:
    """The fake model servers listen on 127.0.0.1, as in the demo; SSRF tests turn this off themselves."""
    settings.ALLOW_PRIVATE_ENDPOINTS = True


@pytest.fixture(autouse=True, scope="session")
def _own_throttle_counters_per_test_process() -> Iterator[None]:
    """Under pytest-xdist (`make test-fast`), each test process counts rate limits under its own keys, so one
    process clearing its counters never resets another's mid-test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        yield
        return
    from django.conf import settings
    from django.test.utils import override_settings

    throttle = dict(settings.CACHES["throttle"])
    if "redis" in throttle["BACKEND"]:
        throttle["KEY_PREFIX"] = f"throttle-{worker}"
    else:
        throttle["LOCATION"] = f"{throttle['LOCATION']}-{worker}"
    with override_settings(CACHES={**settings.CACHES, "throttle": throttle}):
        yield


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The leaderboard caches built boards; a test must never see another test's."""
    from django.core.cache import cache, caches

    cache.clear()
    clear_throttle_counters(caches["throttle"])  # every test starts as a fresh client
    yield


def clear_throttle_counters(throttle) -> None:
    """Delete the rate-limit counters only: on Redis the throttle cache shares REDIS_URL's database with the
    broker (and a developer's own data), which its clear() would flush whole."""
    from django.core.cache.backends.redis import RedisCache

    if not isinstance(throttle, RedisCache):
        throttle.clear()
        return
    client = throttle._cache.get_client(write=True)
    keys = list(client.scan_iter(match=throttle.make_key("*")))
    if keys:
        client.delete(*keys)


REFERENCE_MODELS_DIR = ROOT / "var" / "models"


@pytest.fixture(scope="session")
def reference_models_dir() -> Path:
    """Where `make test` prepared the reference model (`manage.py prepare_reference_model`)."""
    from evalworkers.backends import reference

    if not reference.is_prepared(REFERENCE_MODELS_DIR):
        missing_service(f"needs the reference model in {REFERENCE_MODELS_DIR}: run `make reference`")
    return REFERENCE_MODELS_DIR


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, reference_models_dir: Path) -> Path:
    """A randomly initialised 2-layer Llama saved as a model folder, with the reference model's tokenizer:
    loaded through the real loading path, fast enough to try every KV method."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from evalworkers.backends import reference

    tokenizer = AutoTokenizer.from_pretrained(reference.folder(reference_models_dir))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _close_stray_sessions_before_teardown(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Worker and server processes the tests started have exited, but PostgreSQL may not have noticed their
    closed sockets yet; end those sessions so the test database can be dropped cleanly."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
