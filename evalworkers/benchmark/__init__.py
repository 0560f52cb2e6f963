"""The benchmark suite: deterministic, length-exact synthetic long-context tasks scored like RULER.

Pure Python (no Django): workers call ``generate_sample`` with a version's seed and a task spec, render the
sample for their backend, and ``score`` the prediction.
"""

from .answers import AnswerOutcome, ExtractedAnswer, extract_answer
from .errors import SpecError
from .generate import generate_sample, length_tolerance, min_length
from .plan import Turn, turns_of
from .registry import (
    TASK_TYPES,
    category_of,
    default_max_new_tokens,
    metric_of,
    validate_task,
    validate_task_entry,
)
from .sample import RenderOptions, Sample
from .scoring import score, string_match_all, string_match_part
from .tokens import CalibratedCounter, HFTokenCounter, TokenCounter

__all__ = [
    "TASK_TYPES",
    "AnswerOutcome",
    "CalibratedCounter",
    "ExtractedAnswer",
    "HFTokenCounter",
    "RenderOptions",
    "Sample",
    "SpecError",
    "TokenCounter",
    "Turn",
    "category_of",
    "default_max_new_tokens",
    "extract_answer",
    "generate_sample",
    "length_tolerance",
    "metric_of",
    "min_length",
    "score",
    "string_match_all",
    "string_match_part",
    "turns_of",
    "validate_task",
    "validate_task_entry",
]
