"""One model across benchmark versions: its key is its Hugging Face repo id in lower case, or, for a name or an old
repo id listed in the alias table (data/reported/aliases.csv: model_key,name,why), the key the table gives it."""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

ALIAS_FILE = Path(__file__).resolve().parent.parent / "data" / "reported" / "aliases.csv"
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@lru_cache(maxsize=4)
def aliases(path: Path = ALIAS_FILE) -> dict[str, str]:
    """{name or repo id, lower case: model key}; empty when the file is missing."""
    try:
        with path.open(newline="") as handle:
            return {row["name"].strip().lower(): row["model_key"].strip().lower()
                    for row in csv.DictReader(handle) if row.get("name") and row.get("model_key")}
    except FileNotFoundError:
        return {}


def model_key(hf_repo: str, name: str = "") -> str:
    """The model's identity: the alias table's key for its repo id or its name, else its repo id (lower case) when it
    looks like one ("owner/name"); "" when neither identifies it (a model named only by its endpoint)."""
    table = aliases()
    repo = (hf_repo or "").strip().lower()
    if repo and repo in table:
        return table[repo]
    if repo and REPO_ID.match(repo):
        return repo
    return table.get((name or "").strip().rstrip("*").strip().lower(), "")
