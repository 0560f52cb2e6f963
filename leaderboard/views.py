"""Plain typed views that build an explicit context; the numbers come from the cached leaderboard rows."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from evalworkers.benchmark import ruler
from evalworkers.kv import registry
from evalworkers.stats import METHOD_LABELS, IntervalMethod
from leaderboard import (
    board,
    board_snapshots,
    charts,
    cost,
    crossref,
    efficiency,
    literal_gap,
    long_generation,
    pagecache,
    partial,
    progress,
    sample_preview,
    samples,
    shared_context,
    versioning,
    workers,
)
from leaderboard.models import (
    BenchmarkVersion,
    LeaderboardRow,
    Submission,
    SubmissionStatus,
    TaskCategory,
    Visibility,
)

SAMPLES_PER_PAGE = 25
CI_NOTE = (f"{METHOD_LABELS[IntervalMethod.PRICE_BONETT]} (Price & Bonett 2004), from each cell's score and its "
           "number of scored samples; per cell, the Wilson score interval. None for partial rows and for reported "
           "results without sample counts.")


def index(request: HttpRequest) -> HttpResponse:
    filters = board.BoardFilters.from_query(request.GET)
    stamp = board.version_stamp(filters.version) if filters.version else board.landing_stamp()
    if stamp is None:
        ctx = {"filters": filters, "versions": BenchmarkVersion.objects.browsable(), "version": None}
        return render(request, "leaderboard/index.html", ctx, status=404 if filters.version else 200)
    return pagecache.cached_page(request, stamp, lambda: _index(request, filters, stamp[0]))


def _index(request: HttpRequest, filters: board.BoardFilters, version_id: int) -> HttpResponse:
    version = BenchmarkVersion.objects.get(pk=version_id)
    if not filters.version:  # the landing version: its links and downloads name it
        filters = replace(filters, version=version.slug)
    ctx: dict = {"filters": filters, "versions": BenchmarkVersion.objects.browsable(), "version": version,
                 "other_boards": _other_boards(version)}
    rows, snapshot = board_snapshots.board_for(version, filters)
    lengths = list(version.lengths)
    page = Paginator(rows, board.PAGE_SIZE).get_page(request.GET.get("page"))
    options = board_snapshots.options(snapshot)
    ctx.update(
        rows=rows, page=page, lengths=lengths, length_labels=[charts.length_label(n) for n in lengths],
        threshold=version.effective_length_threshold, ci_note=CI_NOTE,
        curves_div=board_snapshots.curves_div(version, rows, filters, snapshot),
        rows_html=board_snapshots.page_rows_html(rows, page, filters, snapshot),
        output_curves_div=board_snapshots.output_curves_div(version, rows, filters),
        tasks=list(version.tasks.values_list("key", flat=True)), categories=TaskCategory.choices,
        methods=options["methods"], budgets=options["budgets"], query=filters.as_query(), sort_links={
            name: filters.as_query(sort=("-" + name) if filters.sort == name else name) for name in board.SORTABLE
        },
        length_columns=[(charts.length_label(n), filters.as_query(
            sort=f"-len{n}" if filters.sort == f"len{n}" else f"len{n}")) for n in lengths],
    )
    return render(request, "leaderboard/index.html", ctx)


def _other_boards(version: BenchmarkVersion) -> list[dict]:
    """The other browsable versions with how many real models each shows, for the front page's links."""
    counts = board.real_models_by_version()
    return [{"version": v, "models": counts.get(v.pk, 0)}
            for v in BenchmarkVersion.objects.browsable().exclude(pk=version.pk).order_by("origin", "slug")
            if counts.get(v.pk)]


def _public_submission(request: HttpRequest, submission_id: int) -> Submission:
    sub = get_object_or_404(Submission.objects.select_related("model", "version"), pk=submission_id)
    if sub.visibility == Visibility.HIDDEN and not request.user.is_staff:
        raise Http404("This result was withdrawn from the leaderboard.")
    return sub


def model_detail(request: HttpRequest, submission_id: int) -> HttpResponse:
    sub = _public_submission(request, submission_id)
    if sub.status != SubmissionStatus.COMPLETED:  # its cells still move (or it ended without a result)
        return _unfinished(request, sub)
    if sub.version.is_reported:
        return _reported_detail(request, sub)
    return pagecache.cached_page(request, sub.version, lambda: _model_detail(request, sub))


def _reported_detail(request: HttpRequest, sub: Submission) -> HttpResponse:
    """A row of a published table: its figures as published, ours computed from them, the checks, the source."""
    version = sub.version
    lengths = list(version.lengths)
    row = LeaderboardRow.objects.filter(submission=sub).first()
    result = getattr(sub, "reported_result", None)
    published_scores = (result.published or {}).get("scores", {}) if result else {}
    curve = [{"label": sub.model.display_name, "scores_by_length": row.scores_by_length}] if row else []
    line = row.threshold if row and row.threshold is not None else None
    return render(request, "leaderboard/model_reported.html", {
        "sub": sub, "entry": sub.model, "version": version, "row": row, "result": result,
        "length_rows": [{"label": charts.length_label(n), "published": published_scores.get(str(n), ""),
                         "score": row.scores_by_length.get(str(n)) if row else None} for n in lengths],
        "curve_div": charts.to_div(charts.degradation_figure(curve, lengths, line)) if curve else "",
        "elsewhere": crossref.elsewhere(sub),
    })


def _unfinished(request: HttpRequest, sub: Submission) -> HttpResponse:
    """A submission without a result yet: where it stands, a link to its status, and the cells finished so far."""
    role = progress.role_of(request.user, sub)
    done = partial.partial_results(sub)
    return render(request, "leaderboard/model_unfinished.html", {
        "sub": sub, "entry": sub.model, "version": sub.version, "done": done,
        "explanation": progress.explanation(sub, role, progress.queue_position(sub)),
        "length_labels": [charts.length_label(n) for n in done.lengths],
        "heatmap_div": (charts.to_div(charts.task_heatmap_figure(done.task_scores, list(done.lengths)))
                        if done.has_scores else ""),
    })


def _model_detail(request: HttpRequest, sub: Submission) -> HttpResponse:
    version = sub.version
    lengths = list(version.lengths)
    rows = list(LeaderboardRow.objects.filter(submission=sub).order_by("method", "-budget"))
    full = next((r for r in rows if r.method == "full" and r.budget == 1.0), rows[0] if rows else None)
    tasks = list(version.tasks.values_list("key", flat=True))
    points = [{"method": r.method, "budget": r.budget, "score": r.average, "kv_bytes": r.kv_bytes_mean}
              for r in rows if r.average is not None]
    figures = samples.stored_figures(sub)
    depth = figures["depth"]
    measured = efficiency.measured(sub)
    at_length = _chosen_length(request, lengths)
    failures_only = request.GET.get("failures") == "1"
    task_filter = request.GET.get("task", "")
    shared = shared_context.of(sub, lengths)
    page = Paginator(samples.browse(sub, failures_only=failures_only, task=task_filter), SAMPLES_PER_PAGE).get_page(
        request.GET.get("page"))
    ctx = {
        "sub": sub, "entry": sub.model, "version": version, "rows": rows, "full": full, "lengths": lengths,
        "length_labels": [charts.length_label(n) for n in lengths], "tasks": tasks,
        "heatmap_div": charts.to_div(charts.task_heatmap_figure(full.task_scores, lengths)) if full else "",
        "task_curves_div": charts.to_div(charts.task_curves_figure(full.task_scores, lengths)) if full else "",
        "literal_gap": literal_gap.literal_gap(version, full.task_scores) if full else None,
        "budget_div": (charts.to_div(charts.budget_figure(efficiency.points_at(rows, at_length)))
                       if len(rows) > 1 else ""),
        "at_length": at_length, "keep_table": efficiency.budget_to_keep(rows, lengths) if len(rows) > 1 else [],
        "keep_percent": round(efficiency.KEEP_FRACTION * 100),
        "pareto_div": charts.to_div(charts.pareto_figure(points)) if len(rows) > 1 else "",
        "measured": measured, "oom_sentences": efficiency.oom_summary(measured),
        "query_aware": bool((version.params or {}).get("query_aware")),
        "depth_div": charts.to_div(charts.depth_heatmap_figure(depth, lengths)) if depth else "",
        "cells": sub.cells.select_related("task").order_by("task__key", "length", "method", "-budget"),
        "page": page, "failures_only": failures_only, "task_filter": task_filter,
        "events": sub.events.select_related("actor"), "answers": figures["answers"],
        "elsewhere": crossref.elsewhere(sub),
        **_reply_length_context(sub, rows),
        "shared": shared, "turn_div": charts.to_div(charts.turn_figure(shared.lines)) if shared else "",
    }
    return render(request, "leaderboard/model.html", ctx)


def _reply_length_context(sub: Submission, rows: list[LeaderboardRow]) -> dict:
    """The output-length axis: the score against required reply length per KV point, the replies' figures and the
    many-answers position picture; nothing when the version has no long-generation task."""
    outputs = long_generation.output_lengths(sub.version)
    if not outputs:
        return {}
    curves = [{"label": charts_label(r), "scores_by_output": r.scores_by_output} for r in rows if r.scores_by_output]
    positions = long_generation.position_samples(sub)
    return {
        "output_labels": [charts.length_label(n) for n in outputs],
        "output_curve_div": charts.to_div(charts.output_degradation_figure(curves, outputs)),
        "reply_table": long_generation.reply_table(sub),
        "position_div": charts.to_div(charts.position_heatmap_figure(positions, outputs)) if positions else "",
    }


def charts_label(row: LeaderboardRow) -> str:
    """A KV point's name on a model's own page (the model is the page's)."""
    return "Full cache" if row.method == "full" else registry.point_label(row.method, row.budget)


def _chosen_length(request: HttpRequest, lengths: list[int]) -> int:
    """The length asked for in ?length=, else the longest (where KV methods matter most)."""
    raw = request.GET.get("length", "")
    return int(raw) if raw.isdigit() and int(raw) in lengths else lengths[-1]


def compare(request: HttpRequest) -> HttpResponse:
    ids = [int(v) for v in request.GET.getlist("m") if v.isdigit()][:6]
    first = LeaderboardRow.objects.filter(pk__in=ids[:1]).select_related("version").first()
    if first is None:
        return _compare(request, ids)
    return pagecache.cached_page(request, first.version, lambda: _compare(request, ids))


def _compare(request: HttpRequest, ids: list[int]) -> HttpResponse:
    rows = {r.pk: r for r in LeaderboardRow.objects.filter(pk__in=ids).exclude(visibility=Visibility.HIDDEN)
            .select_related("version")}
    chosen = [rows[i] for i in ids if i in rows]
    ctx: dict = {"rows": chosen, "error": ""}
    if len(chosen) < 2:
        ctx["error"] = "Pick 2 to 6 entries to compare (tick them on the leaderboard, then press Compare)."
        return render(request, "leaderboard/compare.html", ctx, status=400 if ids else 200)
    versions = {r.version_id for r in chosen}
    if len(versions) > 1:
        ctx["error"] = "These entries were measured on different benchmark versions; compare within one version."
        return render(request, "leaderboard/compare.html", ctx, status=400)
    version = chosen[0].version
    lengths = list(version.lengths)
    curves = [{"label": board.label(r), "scores_by_length": r.scores_by_length} for r in chosen]
    base = chosen[0]
    table = []
    for n in lengths:
        values = [r.scores_by_length.get(str(n)) for r in chosen]
        first = values[0]
        table.append({"length": charts.length_label(n), "cells": [
            {"score": v, "diff": (v - first) if (v is not None and first is not None and i) else None}
            for i, v in enumerate(values)]})
    ctx.update(version=version, base=base, table=table, curves_div=charts.to_div(
        charts.degradation_figure(curves, lengths, version.effective_length_threshold)))
    return render(request, "leaderboard/compare.html", ctx)


def versions(request: HttpRequest) -> HttpResponse:
    return render(request, "leaderboard/versions.html",
                  {"versions": BenchmarkVersion.objects.browsable().prefetch_related("tasks")})


def version_detail(request: HttpRequest, slug: str) -> HttpResponse:
    version = get_object_or_404(BenchmarkVersion.objects.browsable(), slug=slug)
    if version.is_reported:
        visible = board.visible_rows(version)
        return render(request, "leaderboard/version_reported.html", {
            "version": version, "length_labels": [charts.length_label(n) for n in version.lengths],
            "rows_count": visible.count(), "disagreeing": list(visible.filter(disagrees=True).order_by("model_name")),
        })
    tasks = [(t, ruler.standing(t.key, t.task_type, t.params, t.max_new_tokens)) for t in version.tasks.all()]
    return render(request, "leaderboard/version.html", {
        "version": version, "tasks": tasks, "changes": versioning.changelog(version),
        "length_labels": [charts.length_label(n) for n in version.lengths], "kv_refused": version.kv_refused(),
        "cost": cost.estimate(version, kind="endpoint"),
        "local_cost": cost.estimate(version, kind="huggingface", grid_points=cost.offered_grid(version)),
    })


def version_samples(request: HttpRequest, slug: str) -> HttpResponse:
    """Read-only: any sample of a published or retired version, as the workers generate it."""
    version = get_object_or_404(BenchmarkVersion.objects.browsable(), slug=slug)
    return render(request, "leaderboard/version_samples.html", sample_preview.preview_context(version, request.GET))


def status(request: HttpRequest) -> HttpResponse:
    return render(request, "leaderboard/status.html", {
        "workers": workers.worker_rows(), "recent_tasks": workers.recent_tasks(),
        "lost_cells": workers.lost_cells(), "scheduler": workers.scheduler_state(),
        "lost_after_s": settings.WORKER_LOST_AFTER_S, "heartbeat_s": settings.WORKER_HEARTBEAT_S,
        "queue": Submission.objects.filter(status__in=SubmissionStatus.active()).select_related("model")[:50],
    })


def workers_status(request: HttpRequest) -> JsonResponse:
    tasks = [
        {"task": line.record.task_name, "for": line.subject, "state": line.record.state, "queue": line.record.queue,
         "worker": line.record.worker, "created_at": line.record.created_at.isoformat()}
        for line in workers.recent_tasks()
    ]
    scheduler = workers.scheduler_state()
    return JsonResponse({
        "workers": [w.as_json() for w in workers.worker_rows()], "tasks": tasks,
        "lost_cells": [c.as_json() for c in workers.lost_cells()],
        "scheduler": {"last_recovery_at": scheduler.last_run_at.isoformat() if scheduler.last_run_at else None,
                      "interval_s": scheduler.interval_s, "late": scheduler.late},
    })


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})

