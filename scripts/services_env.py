"""Decide which database and broker the test suite uses, and print them as shell exports.

Order: DATABASE_URL / REDIS_URL when set; else PostgreSQL and Redis on their default localhost ports
when they answer; else the embedded default (SQLite, filesystem broker) — and then tests that need a
server are skipped with the reason. Under CI=true both servers are required: a missing one fails.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys

PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/longctx"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def main() -> int:
    exports: dict[str, str] = {}
    problems: list[str] = []
    if not os.environ.get("DATABASE_URL"):
        if answers("127.0.0.1", 5432):
            exports["DATABASE_URL"] = PG_DEFAULT
        else:
            problems.append("PostgreSQL does not answer on 127.0.0.1:5432")
    if not (os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL")):
        if answers("127.0.0.1", 6379):
            exports["REDIS_URL"] = REDIS_DEFAULT
        else:
            problems.append("Redis does not answer on 127.0.0.1:6379")
    if problems and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        print(f"CI needs PostgreSQL and Redis: {'; '.join(problems)}.", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"note: {problem}; using the embedded default, server tests will be skipped.", file=sys.stderr)
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
