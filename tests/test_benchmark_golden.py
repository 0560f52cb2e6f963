"""Committed SHA-256 hashes of a few samples per task: same bytes on every machine and Python version.

Regenerate (only for an intended change) with `python -m tests.test_benchmark_golden`.
"""

import json

from evalworkers.benchmark import TASK_TYPES, RenderOptions, generate_sample
from evalworkers.benchmark.rng import sample_seed
from tests.benchmark_helpers import GOLDEN_PATH, bpe_counter

CASES = [(t, length, index) for t in sorted(TASK_TYPES) for length, index in ((1024, 0), (3000, 7))]


def digest(task_type, length, index):
    return generate_sample(
        seed=20261128,
        task_key=task_type,
        task_type=task_type,
        params={},
        length=length,
        index=index,
        counter=bpe_counter(),
        options=RenderOptions(system_prompt="Golden."),
    ).sha256()


def current() -> dict[str, str]:
    return {f"{t}@{length}#{index}": digest(t, length, index) for t, length, index in CASES}


def test_samples_match_their_golden_hashes():
    golden = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
    assert current() == golden


def test_the_seed_digest_is_fixed():
    # The root of every sample; a change here changes every sample.
    assert sample_seed(1, "k", {"b": 1, "a": [1, 2]}, 4096, 3).hex()[:16] == SEED_PREFIX


SEED_PREFIX = "701975d93297a1d0"  # sha256('[1,"k",{"a":[1,2],"b":1},4096,3]')


if __name__ == "__main__":
    GOLDEN_PATH.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
