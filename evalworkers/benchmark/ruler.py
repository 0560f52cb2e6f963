"""Which of our tasks are RULER's: the rule a task must meet to carry one of RULER's 13 task names.

RULER's tasks as its config defines them (NVIDIA/RULER ``scripts/synthetic.yaml`` with the generators in
``scripts/data/synthetic/`` and ``tokens_to_generate`` from ``scripts/data/synthetic/constants.py``; the same
settings as lm-evaluation-harness's ``lm_eval/tasks/ruler/*.yaml``). A task under one of these names is RULER's
when its type, parameters and max new tokens say the same. Five needle tasks hide their needles in Paul Graham's
essays and the two QA tasks read SQuAD and HotpotQA, which we cannot ship: ours use generated prose and
generated documents instead, so those tasks are ours and must carry other names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .templates import RULER

ESSAYS = "generated prose stands in for RULER's Paul Graham essays"
SQUAD = "generated documents stand in for RULER's SQuAD paragraphs"
HOTPOT = "generated documents stand in for RULER's HotpotQA paragraphs"


@dataclass(frozen=True)
class RulerTask:
    task_type: str
    params: dict[str, Any]
    max_new_tokens: int
    cannot_match: str = ""  # why no task of ours can be this one


def _niah(task_type: str, haystack: str, keys: str, values: str, max_new: int = 128, **extra: int) -> RulerTask:
    params = {"haystack": haystack, "key_type": keys, "value_type": values, "depth_percent": None, **extra}
    return RulerTask(task_type, params, max_new, ESSAYS if haystack == "prose" else "")


RULER_TASKS: dict[str, RulerTask] = {
    "niah_single_1": _niah("niah_single", "noise", "words", "numbers"),
    "niah_single_2": _niah("niah_single", "prose", "words", "numbers"),
    "niah_single_3": _niah("niah_single", "prose", "words", "uuids"),
    "niah_multikey_1": _niah("niah_multikey", "prose", "words", "numbers", num_keys=4),
    "niah_multikey_2": _niah("niah_multikey", "needles", "words", "numbers", num_keys=1),
    "niah_multikey_3": _niah("niah_multikey", "needles", "uuids", "uuids", num_keys=1),
    "niah_multivalue": _niah("niah_multivalue", "prose", "words", "numbers", num_values=4),
    "niah_multiquery": _niah("niah_multiquery", "prose", "words", "numbers", num_queries=4),
    "vt": RulerTask("variable_tracking", {"num_chains": 1, "num_hops": 4, "haystack": "noise", "template": RULER}, 30),
    "cwe": RulerTask("common_words", {"num_cw": 10, "freq_cw": 30, "freq_ucw": 3, "short_length": 4096,
                                      "short_freq_cw": 6, "short_freq_ucw": 1, "template": RULER}, 120),
    "fwe": RulerTask("frequent_words", {"alpha": 2.0, "vocab_size": None, "word_length": 6, "template": RULER}, 50),
    "qa_1": RulerTask("synthetic_qa", {"hops": 1}, 32, SQUAD),
    "qa_2": RulerTask("synthetic_qa", {"hops": 2}, 32, HOTPOT),
}


@dataclass(frozen=True)
class Standing:
    """``ruler``: RULER's task under its name; ``ours``: not a RULER name; ``differs``: a RULER name on a task
    that is not RULER's (``reason`` says how)."""

    kind: str
    reason: str = ""


def standing(key: str, task_type: str, params: dict[str, Any], max_new_tokens: int) -> Standing:
    """Whether the task under ``key`` is RULER's; ``params`` are cleaned (defaults filled in)."""
    ruler = RULER_TASKS.get(key)
    if ruler is None:
        return Standing("ours")
    if ruler.cannot_match:
        return Standing("differs", ruler.cannot_match)
    if task_type != ruler.task_type:
        return Standing("differs", f"type {task_type}, RULER's is {ruler.task_type}")
    wrong = sorted(k for k, v in ruler.params.items() if params.get(k, None if k != "template" else "v1") != v)
    if wrong:
        if "template" in wrong:
            return Standing("differs", "v1's templates: no in-context example, RULER's layout differs")
        return Standing("differs", "parameters differ from RULER's: " + ", ".join(wrong))
    if max_new_tokens != ruler.max_new_tokens:
        return Standing("differs", f"{max_new_tokens} new tokens, RULER generates {ruler.max_new_tokens}")
    return Standing("ruler")
