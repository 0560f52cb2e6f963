"""Read-only JSON API and CSV exports. Stable URLs under /api/v1/; no secrets ever appear here.

Anonymous clients get API_RATE requests per client address (429 with Retry-After past it); the per-sample export
streams, so its size does not sit in memory.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from leaderboard import board, board_snapshots, samples, throttle
from leaderboard.client_address import throttle_key
from leaderboard.models import BenchmarkVersion, LeaderboardRow, Submission, SubmissionStatus, Visibility

API_VERSION = "1.0"


def rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Count an anonymous client's request against API_RATE; past it, answer 429 with Retry-After."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            verdict = throttle.hit("api", throttle_key(request), settings.API_RATE)
            if not verdict.allowed:
                count, seconds = settings.API_RATE
                response = JsonResponse({
                    "error": "rate_limited",
                    "detail": f"Anonymous clients may make {count} requests per {seconds} s to the API and exports; "
                              f"retry after {verdict.retry_after} s, or log in.",
                    "retry_after": verdict.retry_after}, status=429)
                response["Retry-After"] = str(verdict.retry_after)
                return response
        return view(request, *args, **kwargs)

    return wrapped


def json_not_found(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A JSON endpoint answers a missing version or submission in JSON too: 404 with what is missing."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return JsonResponse({"error": "not_found", "detail": str(exc) or "Not found."}, status=404)

    return wrapped


def index(request: HttpRequest) -> JsonResponse:
    """The API's entry point: its endpoints and their description."""
    return JsonResponse({"endpoints": {name: reverse(f"leaderboard:{name}") for name in (
        "api-versions", "api-leaderboard", "api-openapi")},
        "submission": reverse("leaderboard:api-submission", args=[0]).replace("/0", "/{id}"),
        "description": "Read-only JSON; see openapi.json. Anonymous clients are rate-limited (API_RATE)."})


def _version_json(v: BenchmarkVersion) -> dict[str, Any]:
    return {"slug": v.slug, "title": v.title, "status": v.status, "is_default": v.is_default, "seed": v.seed,
            "lengths": v.lengths, "samples_per_cell": v.samples_per_cell,
            "effective_length_threshold": v.effective_length_threshold, "kv_methods": v.kv_methods,
            "kv_budgets": v.kv_budgets, "kv_method_budgets": v.kv_method_budgets, "params": v.params,
            "reasoning_extra_tokens": v.reasoning_extra_tokens, "spec_hash": v.spec_hash,
            "published_at": v.published_at.isoformat() if v.published_at else None,
            "tasks": [{"key": t.key, "type": t.task_type, "category": t.category, "params": t.params,
                       "max_new_tokens": t.max_new_tokens, "weight": t.weight} for t in v.tasks.all()]}


def _row_json(item: board.BoardRow) -> dict[str, Any]:
    r = item.row
    return {"id": r.pk, "submission": r.submission_id, "model": r.model_name, "organisation": r.organisation,
            "kind": r.model_kind, "baseline": r.is_baseline, "flagged": r.visibility == Visibility.FLAGGED,
            "note": r.public_note, "method": r.method, "budget": r.budget, "rank": item.rank,
            "rank_range": [item.rank, item.rank_high], "claimed_context": r.claimed_context,
            "effective_length": item.effective_length,
            "scores_by_length": {str(k): v for k, v in item.scores.items()}, "average": item.average,
            "wavg_inc": item.wavg_inc, "wavg_dec": item.wavg_dec, "ci": [item.ci_low, item.ci_high],
            "ci_method": r.ci_method if item.ci_low is not None else "",
            "ci_method_label": r.get_ci_method_display() if item.ci_low is not None else "",
            "parameters_b": r.parameters_b, "complete": r.complete, "partial": r.is_partial,
            "partial_reason": r.partial_reason, "length_notes": r.length_notes, "lengths_verified": r.lengths_verified,
            "completed_at": r.completed_at.isoformat() if r.completed_at else None}


@rate_limited
def versions(request: HttpRequest) -> JsonResponse:
    items = BenchmarkVersion.objects.browsable().prefetch_related("tasks")
    return JsonResponse({"versions": [_version_json(v) for v in items]})


def _board(request: HttpRequest) -> tuple[BenchmarkVersion, board.BoardFilters, board.Board]:
    filters = board.BoardFilters.from_query(request.GET)
    version = board.pick_version(filters.version)
    if version is None:
        raise Http404(f"No published benchmark version {filters.version!r}.")
    return version, filters, board_snapshots.board_for(version, filters)[0]


@rate_limited
@json_not_found
def leaderboard(request: HttpRequest) -> JsonResponse:
    version, filters, rows = _board(request)
    return JsonResponse({"version": version.slug, "spec_hash": version.spec_hash, "lengths": version.lengths,
                         "threshold": version.effective_length_threshold, "warnings": list(filters.errors),
                         "rows": [_row_json(r) for r in rows]})


@rate_limited
@json_not_found
def submission(request: HttpRequest, submission_id: int) -> JsonResponse:
    sub = get_object_or_404(Submission.objects.select_related("model", "version"), pk=submission_id)
    if sub.visibility == Visibility.HIDDEN:
        raise Http404("This result was withdrawn.")
    cells = sub.cells.select_related("task").order_by("task__key", "length", "method", "-budget")
    return JsonResponse({
        "id": sub.pk, "model": sub.model.display_name, "organisation": sub.model.organisation,
        "kind": sub.model.kind, "version": sub.version.slug, "spec_hash": sub.version.spec_hash,
        "status": sub.status, "visibility": sub.visibility, "note": sub.public_note,
        "created_at": sub.created_at.isoformat(),
        "finished_at": sub.finished_at.isoformat() if sub.finished_at else None,
        "cells": [{"task": c.task.key, "category": c.task.category, "length": c.length, "method": c.method,
                   "budget": c.budget, "status": c.status, "score": c.score, "ci": [c.ci_low, c.ci_high],
                   "ci_method": c.ci_method,
                   "n": c.samples_done - c.samples_errored, "errors": c.samples_errored,
                   "prompt_tokens_mean": c.prompt_tokens_mean, "prompt_token_mismatch": c.prompt_token_mismatch,
                   "kv_bytes": c.kv_bytes, "peak_memory_bytes": c.peak_memory_bytes, "ttft_s": c.ttft_s,
                   "decode_tokens_per_s": c.decode_tokens_per_s, "finish_reasons": c.finish_reasons,
                   "no_final_answer": c.no_final_answer, "reasoning_chars_mean": c.reasoning_chars_mean,
                   "output_tokens": c.task.output_tokens, "output_tokens_mean": c.output_tokens_mean,
                   "kv_bytes_end": c.kv_bytes_end,
                   "turns": c.task.turns, "first_turn_score": c.first_turn_score,
                   "later_turns_score": c.later_turns_score, "kv_bytes_after_turns": c.kv_bytes_after_turns,
                   "first_turn_ttft_s": c.first_turn_ttft_s, "second_turn_ttft_s": c.second_turn_ttft_s}
                  for c in cells],
        "request_options": sub.request_options, "dialect": sub.dialect,
        "leaderboard_rows": list(LeaderboardRow.objects.filter(submission=sub).values(
            "id", "method", "budget", "average", "effective_length", "scores_by_length", "scores_by_output",
            "ci_low", "ci_high", "ci_method", "complete", "partial_reason")),
    })


def _csv_response(filename: str) -> tuple[HttpResponse, Any]:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response, csv.writer(response)


def _cell(value: Any) -> Any:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: model names are user input.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@rate_limited
def leaderboard_csv(request: HttpRequest) -> HttpResponse:
    version, _, rows = _board(request)
    response, writer = _csv_response(f"leaderboard-{version.slug}.csv")
    writer.writerow(["rank", "rank_high", "model", "organisation", "kind", "method", "budget", "claimed_context",
                     "effective_length", *[f"score_{n}" for n in version.lengths], "average", "wavg_inc",
                     "wavg_dec", "ci_low", "ci_high", "ci_method", "parameters_b", "completed_at", "submission",
                     "partial"])
    for item in rows:
        r = item.row
        writer.writerow([_cell(v) for v in (
            item.rank, item.rank_high, r.model_name, r.organisation, r.model_kind, r.method, r.budget,
            r.claimed_context, item.effective_length, *[item.scores[n] for n in version.lengths], item.average,
            item.wavg_inc, item.wavg_dec, item.ci_low, item.ci_high, r.ci_method if item.ci_low is not None else "",
            r.parameters_b, r.completed_at.isoformat() if r.completed_at else "", r.submission_id, r.is_partial)])
    return response


@rate_limited
def samples_csv(request: HttpRequest, submission_id: int) -> HttpResponse:
    sub = get_object_or_404(Submission, pk=submission_id)
    if sub.visibility == Visibility.HIDDEN or (sub.status != SubmissionStatus.COMPLETED and not request.user.is_staff):
        raise Http404("No public results for this submission.")
    header = ["task", "length", "method", "budget", "index", "turn", "score", "error", "expected", "prediction",
              "answer_outcome", "answer_found_by", "finish_reason", "reasoning_chars", "reasoning_tokens",
              "prompt_tokens", "output_tokens", "latency_s", "depth_percent"]
    rows = ([_cell(v) for v in (
        s.cell.task.key, s.cell.length, s.cell.method, s.cell.budget, s.index, s.turn, s.score, s.error,
        " | ".join(map(str, s.expected)), s.prediction, s.answer_outcome, s.answer_found_by, s.finish_reason,
        s.reasoning_chars, s.reasoning_tokens, s.prompt_tokens, s.output_tokens, s.latency_s,
        (s.metadata or {}).get("depth_percent"))] for s in samples.browse(sub).iterator(chunk_size=2000))
    return _streamed_csv(f"submission-{sub.pk}-samples.csv", header, rows)


class _Line:
    """A file-like object csv.writer writes one row into, handing the line back."""

    def write(self, value: str) -> str:
        return value


def _streamed_csv(filename: str, header: list[str], rows: Iterable[list[Any]]) -> StreamingHttpResponse:
    writer = csv.writer(_Line())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@rate_limited
def openapi(request: HttpRequest) -> JsonResponse:
    """A hand-kept OpenAPI 3.1 description of the read-only API (four GET endpoints)."""
    def get(summary: str, params: list[dict] | None = None) -> dict:
        return {"get": {"summary": summary, "parameters": params or [],
                        "responses": {"200": {"description": "OK", "content": {"application/json": {}}},
                                      "404": {"description": "Not found"},
                                      "429": {"description": "Too many requests from an anonymous client; retry "
                                                             "after the Retry-After header's seconds"}}}}

    query = [{"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d} for n, t, d in (
        ("version", "string", "benchmark version slug (default: the version the front page shows)"),
        ("category", "string", "retrieval, tracing, aggregation, qa or generation"), ("task", "string", "task key"),
        ("method", "string", "KV method, e.g. full or snapkv"), ("budget", "number", "KV budget in (0, 1]"),
        ("kind", "string", "endpoint, huggingface or reported"), ("min_params", "number", "billions"),
        ("max_params", "number", "billions"), ("q", "string", "search in model and organisation"),
        ("sort", "string", "column, '-' prefix reverses"))]
    sub_param = [{"name": "submission_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    return JsonResponse({
        "openapi": "3.1.0",
        "info": {"title": "LongCtx Leaderboard API", "version": API_VERSION,
                 "description": "Read-only. Scores are 0-100; lengths are in tokens. Anonymous clients are "
                                "rate-limited per address (429 with Retry-After)."},
        "paths": {
            reverse("leaderboard:api-versions"): get("Published and retired benchmark versions with their tasks"),
            reverse("leaderboard:api-leaderboard"): get("The ranked leaderboard of one version", query),
            "/api/v1/submissions/{submission_id}": get("One submission with its cells", sub_param),
            reverse("leaderboard:leaderboard-csv"): get("The leaderboard as CSV", query),
        },
    })
