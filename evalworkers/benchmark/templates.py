"""Template revisions: which prompt layout a task type renders.

``v1`` is what version v1 published (kept byte-for-byte so its scores keep their meaning). ``ruler`` follows
RULER's own generators (NVIDIA/RULER ``scripts/data/synthetic/``: ``constants.py`` for the instruction and
answer-prefix text, ``variable_tracking.py`` and ``common_words_extraction.py`` for their in-context examples,
``freq_words_extraction.py`` for the noise word and vocabulary size) as lm-evaluation-harness ports them
(``lm_eval/tasks/ruler/``). Task types whose v1 rendering already is RULER's (the needle tasks, the QA layout)
have no revision.

Where ``ruler`` still differs from RULER, on purpose: the answer prefix of vt says "assigned" (RULER's text has
a typo); the worked examples are drawn per sample by our generators (RULER draws one per data set and renames it);
the haystack's last unit may be cut at a word so that the prompt meets its length exactly.
"""

from __future__ import annotations

from typing import Any

from .params import Param

V1 = "v1"
RULER = "ruler"

TEMPLATE = Param(
    "choice", V1,
    "prompt templates: v1 (as version v1 published them) or ruler (RULER's, with its in-context example)",
    choices=(V1, RULER), noun="template", omit_default=True,
)


def template_of(params: dict[str, Any]) -> str:
    """The revision a task's cleaned params ask for (absent means v1: the parameter came later)."""
    return params.get("template", V1)
