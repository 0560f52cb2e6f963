"""Typed readers for environment variables.

Every reader raises ImproperlyConfigured with the variable's name, so a bad value stops the
process at start-up with a message a person can act on instead of failing later somewhere else.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if not value >= minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[str]:
    """Comma-separated CIDR networks, each checked (e.g. 10.1.2.0/24,fd12::/64)."""
    values = env_list(name, [])
    for raw in values:
        try:
            ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {raw!r} is not a network such as 10.1.2.0/24 or fd12::/64.") from None
    return values


def database_config(name: str, default_sqlite: Path) -> dict:
    """Parse DATABASE_URL; only PostgreSQL and SQLite are supported."""
    raw = env_str(name)
    if not raw:
        default_sqlite.parent.mkdir(parents=True, exist_ok=True)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite),
                "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"}}
    try:
        config = dj_database_url.parse(raw, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:  # dj_database_url raises bare ValueError/KeyError for bad URLs
        raise ImproperlyConfigured(
            f"{name} is not a usable database URL ({exc}); expected e.g. "
            "postgres://user:password@127.0.0.1:5432/dbname or sqlite:////absolute/path.db"
        ) from None
    engine = config.get("ENGINE", "")
    if engine not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
        raise ImproperlyConfigured(f"{name} names engine {engine!r}; only postgres:// and sqlite:// are supported.")
    if engine == "django.db.backends.postgresql" and not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} has no database name; add it after the host, e.g. .../longctx.")
    return config


def filesystem_transport_options(folder: Path) -> dict:
    """kombu's filesystem transport: one folder of message files, no server needed."""
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "control_folder": str(folder / "control"),
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
    }


def broker_url(default_folder: Path) -> tuple[str, dict]:
    """CELERY_BROKER_URL, else REDIS_URL, else kombu's filesystem transport under var/."""
    for name in ("CELERY_BROKER_URL", "REDIS_URL"):
        raw = env_str(name)
        if not raw or raw == "filesystem://":
            continue
        if not raw.startswith(("redis://", "rediss://", "amqp://", "memory://")):
            raise ImproperlyConfigured(
                f"{name}={raw!r} is not a broker URL; expected redis://host:6379/0 (or amqp://...)."
            )
        return raw, {}
    return "filesystem://", filesystem_transport_options(default_folder)


def persistent_secret(name: str, path: Path, *, make) -> str:
    """Read NAME from the environment, else a value generated once and kept under var/.

    The embedded default must work with nothing set, yet survive restarts (sessions, encrypted keys).
    """
    raw = env_str(name)
    if raw:
        return raw
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value)
    path.chmod(0o600)
    return value


def new_secret_key() -> str:
    return secrets.token_urlsafe(50)


def new_fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def fernet_keys(name: str, raw: str) -> list[str]:
    """Comma-separated Fernet keys; the first encrypts, all decrypt (key rotation)."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ImproperlyConfigured(f"{name} is empty; generate one with `python -m config.keys`.")
    for key in keys:
        try:
            decoded = base64.urlsafe_b64decode(key.encode())
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                f"{name} must hold url-safe base64 Fernet keys of 32 bytes; generate one with `python -m config.keys`."
            )
    return keys


RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def env_rate(name: str, default: str) -> tuple[int, int] | None:
    """A rate such as 5/h (count per second, minute, hour or day) as (count, seconds); "off" turns it off."""
    raw = env_str(name, default).lower()
    if raw in ("off", "0", "none"):
        return None
    count, _, period = raw.partition("/")
    period = period.strip()
    unit = period[-1:] if period else ""
    multiple = period[:-1] or "1"
    if not count.strip().isdigit() or unit not in RATE_PERIODS or not multiple.isdigit() or int(count) < 1:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a rate; write e.g. 5/h, 120/m or 10/15m (per s, m, h or d), or off.")
    return int(count), int(multiple) * RATE_PERIODS[unit]


def throttle_cache(name: str, folder: Path) -> dict:
    """Where rate-limit counters live: Redis when NAME is a redis:// URL (shared by every web process and
    machine), else files under var/ (shared by the processes of one machine, as `make run` starts them)."""
    raw = env_str(name)
    if raw.startswith(("redis://", "rediss://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": raw, "KEY_PREFIX": "throttle"}
    folder.mkdir(parents=True, exist_ok=True)
    return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(folder)}
