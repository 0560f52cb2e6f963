"""Plain typed views that build an explicit context (the leaderboard table itself comes with issue 6)."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from leaderboard.models import BenchmarkVersion, Submission, TaskRecord, Visibility, WorkerHeartbeat

HEARTBEAT_FRESH = timedelta(minutes=2)


def _workers() -> list[dict]:
    cutoff = timezone.now() - HEARTBEAT_FRESH
    return [
        {"worker": hb.worker, "queue": hb.queue, "seen_at": hb.seen_at.isoformat(), "alive": hb.seen_at >= cutoff}
        for hb in WorkerHeartbeat.objects.all()[:50]
    ]


def index(request: HttpRequest) -> HttpResponse:
    versions = BenchmarkVersion.objects.browsable().prefetch_related("tasks")
    submissions = (
        Submission.objects.filter(visibility__in=[Visibility.PUBLIC, Visibility.FLAGGED])
        .select_related("model", "version")[:20]
    )
    ctx = {
        "versions": versions,
        "submissions": submissions,
        "workers": _workers(),
        "recent_tasks": TaskRecord.objects.all()[:10],
    }
    return render(request, "leaderboard/index.html", ctx)


def version_detail(request: HttpRequest, slug: str) -> HttpResponse:
    version = get_object_or_404(BenchmarkVersion.objects.browsable(), slug=slug)
    return render(request, "leaderboard/version.html", {"version": version, "tasks": version.tasks.all()})


def workers_status(request: HttpRequest) -> JsonResponse:
    tasks = [
        {"task": t.task_name, "state": t.state, "queue": t.queue, "worker": t.worker,
         "created_at": t.created_at.isoformat()}
        for t in TaskRecord.objects.all()[:20]
    ]
    return JsonResponse({"workers": _workers(), "tasks": tasks})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
