"""The reference tokenizer (SmolLM2-135M-Instruct's) as a token counter, for sizing what the web shows.

Pages that show a sample or check that a version's lengths fit its tasks count with it when the reference model
is prepared (`manage.py prepare_reference_model`), and otherwise estimate from characters, and say so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from evalworkers.backends import reference
from evalworkers.benchmark import CalibratedCounter, HFTokenCounter, TokenCounter

CHARS_PER_TOKEN_ESTIMATE = 4.0  # prose in a typical BPE; only used while the reference model is not prepared


@dataclass(frozen=True)
class Counter:
    counter: TokenCounter
    name: str  # what counted, in words
    exact: bool  # False: an estimate from characters


_lock = threading.Lock()
_loaded: dict[Path, Counter] = {}


def counter() -> Counter:
    """The reference tokenizer's counter (loaded once per process), or a character estimate while it is missing."""
    path = reference.folder(Path(settings.EVAL_MODELS_DIR)) / "tokenizer.json"
    with _lock:
        found = _loaded.get(path)
        if found is None and path.is_file():
            found = _loaded[path] = Counter(HFTokenCounter.from_file(path), f"{reference.DISPLAY_NAME} tokenizer",
                                            exact=True)
    if found is not None:
        return found
    return Counter(CalibratedCounter(CHARS_PER_TOKEN_ESTIMATE),
                   f"an estimate of {CHARS_PER_TOKEN_ESTIMATE:g} characters per token (the reference model is not "
                   "prepared: run manage.py prepare_reference_model)", exact=False)
