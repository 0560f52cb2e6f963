"""Building one sample: plan it from its seed, size its context to the token target, verify once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .errors import SpecError
from .plan import Plan, TaskContext, Turn
from .registry import default_max_new_tokens, get_task_type, validate_task
from .rng import Rng, sample_seed
from .sample import RenderOptions, Sample
from .sizing import BuiltContext, TooShort
from .tokens import TokenCounter

MAX_PASSES = 6


def length_tolerance(length: int) -> int:
    """How far below the target a sample may end: 1% of it, or 16 tokens at short lengths.

    16, not fewer: a numbered haystack (QA's "Document N:" headers) can only grow by a header plus a word,
    which costs up to ~14 tokens, so a tighter floor makes some short samples unbuildable.
    """
    return max(length // 100, 16)


def _render(plan: Plan, answer_prefix: str, system_prompt: str | None) -> Callable[[str], str]:
    head = f"{system_prompt}\n\n" if system_prompt else ""
    before = head + plan.instruction + plan.separators[0]
    after = plan.separators[1] + plan.question + (f" {answer_prefix}" if answer_prefix else "")
    return lambda context: before + context + after


def _plan(seed: int, task_key: str, task_type: str, params: dict[str, Any], length: int, index: int,
          counter: TokenCounter) -> tuple[dict[str, Any], Plan]:
    cleaned = validate_task(task_type, params)
    rng = Rng(sample_seed(seed, task_key, cleaned, length, index))
    return cleaned, get_task_type(task_type).plan(TaskContext(rng, cleaned, counter, length))


def fit_context(plan: Plan, render: Callable[[str], str], counter: TokenCounter, target: int,
                tolerance: int) -> tuple[BuiltContext, int, int]:
    """The context whose whole prompt counts at most ``target`` tokens and at most ``tolerance`` fewer.

    The budget starts from piece counts; the assembled prompt is counted once. Only when the tokenizer merges
    across piece boundaries (the sum of pieces differs from the whole) is the budget corrected by the measured
    difference and the prompt counted again. Returns (context, prompt tokens, number of full counts).

    Memory stays bounded at long lengths: a pass keeps only the best context so far and the one just built; the
    rendered prompt of a pass is dropped as soon as it is counted, and texts already counted are remembered by
    their length and hash, not kept.
    """
    fixed = counter.count(render(""))
    budget = target - fixed
    best: tuple[BuiltContext, int] | None = None
    tried: set[int] = set()
    seen: dict[tuple[int, int], int] = {}
    lowest_over = 1 << 62
    passes = 0
    while True:
        built = plan.builder.build(budget)
        tried.add(budget)
        key = (len(built.text), hash(built.text))
        if key in seen:  # a budget change that did not change the text needs no new count
            total = seen[key]
        else:
            total = seen[key] = counter.count(render(built.text))
            passes += 1
        slack = target - total
        if slack >= 0 and (best is None or total > best[1]):
            best = (built, total)
        predicted = built.tokens
        del built  # the best context so far is held by ``best``; any other is let go before the next pass
        if 0 <= slack <= tolerance:
            break
        if (passes >= MAX_PASSES or len(tried) > 4 * MAX_PASSES) and best is not None:
            break
        # Correct from what was predicted for this text (a budget may not be used up to the last token), in
        # predicted units: piece sums overcount when the tokenizer merges across pieces. Over: shrink by the
        # overshoot plus a growing margin. Under: grow by the shortfall, never back to a budget that overshot.
        ratio = predicted / max(1, total - fixed)
        if slack < 0:
            lowest_over = min(lowest_over, budget)
            budget = predicted + math.floor(slack * ratio) - passes * passes
        else:
            budget = min(max(budget + 1, predicted + math.floor(slack * ratio)), lowest_over - 1)
        while best is None and budget in tried:
            budget -= 1
        if budget in tried:
            break
    assert best is not None
    return best[0], best[1], passes


def generate_sample(
    *,
    seed: int,
    task_key: str,
    task_type: str,
    params: dict[str, Any],
    length: int,
    index: int,
    counter: TokenCounter,
    max_new_tokens: int | None = None,
    options: RenderOptions | None = None,
) -> Sample:
    """The sample ``index`` of a task at ``length`` tokens; its content depends only on (seed, task_key,
    params, length, index), its size on the counter (the reading model's tokenizer)."""
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise SpecError("length", f"must be a positive integer, got {length!r}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise SpecError("index", f"must be a non-negative integer, got {index!r}")
    options = options or RenderOptions()
    tt = get_task_type(task_type)
    max_new = default_max_new_tokens(task_type, params) if max_new_tokens is None else max_new_tokens
    if isinstance(max_new, bool) or not isinstance(max_new, int) or max_new <= 0:
        raise SpecError("max_new_tokens", f"must be a positive integer, got {max_new!r}")
    if options.reasoning:
        max_new += options.reasoning_extra_tokens
    cleaned, plan = _plan(seed, task_key, task_type, params, length, index, counter)
    answer_prefix = "" if options.reasoning else plan.answer_prefix
    render = _render(plan, answer_prefix, options.system_prompt)
    target = length - max_new - options.reserve_tokens
    try:
        if target <= 0:
            raise TooShort(0)
        built, total, passes = fit_context(plan, render, counter, target, length_tolerance(length))
    except TooShort as exc:
        need = counter.count(render("")) + exc.needed + max_new + options.reserve_tokens
        raise SpecError(
            "length",
            f"{length} tokens is too short for task {task_key!r} ({task_type}) with {max_new} new tokens; "
            f"it needs at least {need}",
        ) from None
    metadata = {**plan.metadata, **built.metadata, "params": cleaned, "tokenize_passes": passes}
    followups = tuple(Turn(t.question, "" if options.reasoning else t.answer_prefix, list(t.answers),
                           t.metric or tt.metric, dict(t.metadata)) for t in plan.followups)
    return Sample(
        task_key=task_key, task_type=task_type, index=index, length=length,
        instruction=plan.instruction, context=built.text, question=plan.question, answer_prefix=answer_prefix,
        separators=plan.separators, answers=list(plan.answers), metric=tt.metric, max_new_tokens=max_new,
        prompt_tokens=total, system_prompt=options.system_prompt, answer_prefill=options.answer_prefill,
        metadata=metadata, followups=followups,
    )


def min_length(task_type: str, params: dict[str, Any], counter: TokenCounter, max_new_tokens: int | None = None,
               options: RenderOptions | None = None) -> int:
    """About the shortest length at which the task fits (its mandatory content, no filler), for validating a
    version's lengths up front; ``generate_sample`` checks each sample exactly."""
    options = options or RenderOptions()
    max_new = default_max_new_tokens(task_type, params) if max_new_tokens is None else max_new_tokens
    if options.reasoning:
        max_new += options.reasoning_extra_tokens
    _, plan = _plan(0, "min_length", task_type, params, 1, 0, counter)
    render = _render(plan, "" if options.reasoning else plan.answer_prefix, options.system_prompt)
    return counter.count(render("")) + plan.builder.minimum_tokens() + max_new + options.reserve_tokens
