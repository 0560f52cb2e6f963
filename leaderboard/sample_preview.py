"""One sample of a version's task, as a curator or a visitor checks it: the prompt with its inserted facts marked
and its haystack folded away, the expected answer, the prompt's length in the reference tokenizer's tokens, and
how the reply is scored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evalworkers.benchmark import SpecError, generate_sample, length_tolerance
from evalworkers.benchmark.preview import Segment, context_segments
from evalworkers.benchmark.scoring import PREFIX_CHARS
from evalworkers.benchmark.tasks.generation import gold_reply
from leaderboard import reference_tokens
from leaderboard.models import BenchmarkVersion, TaskSpec

SCORING_RULES = {
    "string_match_all": "RULER's string_match_all: the share of the expected answers found in the final answer "
                        "(case-insensitive substring match, after any reasoning is removed), times 100.",
    "string_match_part": "RULER's string_match_part: 100 when any expected answer is found in the final answer "
                         "(case-insensitive substring match, after any reasoning is removed), else 0.",
    "sequence_ratio": "OpenAI MRCR's grade: 0 unless the final answer starts with the prefix the question asks for; "
                      "otherwise, with the prefix removed, Python difflib's SequenceMatcher ratio between the answer "
                      "and the expected reply (case- and whitespace-sensitive), times 100.",
    "row_f1": "Row-level F1 of the extracted table (LongProc's HTML-to-TSV metric): a written row counts when every "
              "cell equals a gold row's after LongProc's normalisation; order does not matter; times 100.",
    "answers_in_order": "Per question: the share of its values found on the reply's line A<n>; the mean over the "
                        "questions, times 100 (each question's score and place in the reply are kept).",
    "length_following": "0.5 x LongWriter's length score of the word count + 0.25 x the share of the required "
                        "words present + 0.25 x the share in the required order (0-100).",
}


class PreviewError(ValueError):
    """A choice of task, length or index the version does not have, or a sample that cannot be built."""


@dataclass(frozen=True)
class Choice:
    task: TaskSpec
    length: int
    index: int


@dataclass
class Preview:
    version: BenchmarkVersion
    choice: Choice
    instruction: str
    segments: list[Segment]
    question: str
    answer_prefix: str
    system_prompt: str | None
    answers: list[str]
    answer_counts: dict[str, int]
    metric: str
    scoring_rule: str
    max_new_tokens: int
    target_tokens: int  # the length less the new tokens: what the prompt is sized to
    tolerance: int  # how far below the target a prompt may end
    measured_tokens: int  # the whole prompt, counted again by the reference tokenizer
    counter_name: str
    counter_exact: bool
    depth_percent: float | None = None
    insert_count: int = 0
    notes: list[str] = field(default_factory=list)
    gold_reply: str = ""  # a long-generation task's reply that scores 100 (its answers are not in the context)
    output_tokens: int | None = None  # the reply length the task asks for

    @property
    def within_tolerance(self) -> bool:
        return self.target_tokens - self.tolerance <= self.measured_tokens <= self.target_tokens

    @property
    def haystack_chars(self) -> int:
        return sum(len(s.text) for s in self.segments if s.kind == "haystack")


def choose(version: BenchmarkVersion, task_key: str | None, length: str | int | None,
           index: str | int | None) -> Choice:
    """The (task, length, index) asked for, defaulting to the first task, the shortest length and index 0;
    PreviewError names what the version does not have."""
    tasks = list(version.tasks.all())
    if not tasks:
        raise PreviewError(f"'{version.slug}' has no tasks yet; add one and save to preview its samples.")
    task = next((t for t in tasks if t.key == task_key), None) if task_key else tasks[0]
    if task is None:
        raise PreviewError(f"'{version.slug}' has no task {task_key!r}; choose one of "
                           f"{', '.join(t.key for t in tasks)}.")
    lengths = list(version.lengths or [])
    try:
        chosen_length = int(length) if length not in (None, "") else (lengths[0] if lengths else 0)
        chosen_index = int(index) if index not in (None, "") else 0
    except (TypeError, ValueError):
        raise PreviewError("The length and the sample index are whole numbers.") from None
    if chosen_length not in lengths:
        raise PreviewError(f"'{version.slug}' has no length {chosen_length}; choose one of "
                           f"{', '.join(str(n) for n in lengths)}.")
    if not 0 <= chosen_index < version.samples_per_cell:
        raise PreviewError(f"Sample indices of '{version.slug}' run from 0 to {version.samples_per_cell - 1}.")
    return Choice(task, chosen_length, chosen_index)


def build(version: BenchmarkVersion, choice: Choice) -> Preview:
    """Generate the chosen sample exactly as a worker would for a model with the reference tokenizer."""
    ref = reference_tokens.counter()
    task = choice.task
    options = version.render_options
    try:
        sample = generate_sample(seed=version.seed, task_key=task.key, task_type=task.task_type, params=task.params,
                                 length=choice.length, index=choice.index, counter=ref.counter,
                                 max_new_tokens=task.max_new_tokens, options=options)
        segments = context_segments(sample, seed=version.seed, counter=ref.counter)
    except SpecError as exc:
        raise PreviewError(str(exc)) from None
    measured = ref.counter.count(sample.as_completion_prompt())
    notes = []
    if options.reasoning:
        notes.append(f"The version expects reasoning: no answer prefix, and {options.reasoning_extra_tokens} more "
                     "new tokens for thinking, inside the length.")
    if sample.metric == "sequence_ratio":
        reply = sample.answers[0][PREFIX_CHARS:]
        count = sample.context.count(reply)
        notes.append(f"The expected reply without its {PREFIX_CHARS}-character prefix occurs {count} "
                     f"time{'s' if count != 1 else ''} in the context; the prefix itself only in the question.")
    placed = sample.metadata.get("inserts") or []
    return Preview(
        version=version, choice=choice, instruction=sample.instruction, segments=segments,
        question=sample.question, answer_prefix=sample.answer_prefix, system_prompt=sample.system_prompt,
        answers=list(sample.answers), answer_counts={a: sample.context.count(a) for a in sample.answers},
        metric=sample.metric, scoring_rule=SCORING_RULES.get(sample.metric, sample.metric),
        max_new_tokens=sample.max_new_tokens, target_tokens=choice.length - sample.max_new_tokens,
        tolerance=length_tolerance(choice.length), measured_tokens=measured, counter_name=ref.name,
        counter_exact=ref.exact, depth_percent=sample.metadata.get("depth_percent"), insert_count=len(placed),
        notes=notes, output_tokens=task.output_tokens,
        gold_reply=gold_reply(task.task_type, sample.answers, sample.metadata) if task.output_tokens else "",
    )


def preview_context(version: BenchmarkVersion, query: Mapping[str, str]) -> dict[str, Any]:
    """What the preview pages (admin and public) show for a query of task, length and index."""
    context: dict[str, Any] = {"version": version, "tasks": list(version.tasks.all()),
                               "lengths": list(version.lengths or []),
                               "max_index": max(version.samples_per_cell - 1, 0), "preview": None, "error": None}
    try:
        choice = choose(version, query.get("task"), query.get("length"), query.get("index"))
        context["choice"] = choice
        context["preview"] = build(version, choice)
    except PreviewError as exc:
        context["error"] = str(exc)
    return context
