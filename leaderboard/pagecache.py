"""Whole-page caching for the public result pages, keyed by the version's board revision.

Every change that can alter a page (a recompute, hiding, flagging, a re-run, a deleted submission) increments
BenchmarkVersion.board_revision (leaderboard/rows.py), which the view has already loaded: a repeated
request costs no query beyond the version's and one cache read. Staff see extra links, so they get their own
entries. The revision lives in the database, not the cache, so that a worker's recompute reaches every web
process whatever the cache backend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.contrib.messages import get_messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from leaderboard.models import BenchmarkVersion

PAGE_CACHE_SECONDS = 600


def cached_page(request: HttpRequest, version: BenchmarkVersion | tuple[int, object],
                render: Callable[[], HttpResponse]) -> HttpResponse:
    """The page from the cache, else rendered and kept (only 200s, and never a page carrying messages)."""
    if request.method != "GET" or len(get_messages(request)):
        return render()
    stamp = (version.pk, version.board_revision) if isinstance(version, BenchmarkVersion) else version
    raw = repr((stamp, request.get_full_path(), request.user.is_staff))
    key = "page:" + hashlib.sha256(raw.encode()).hexdigest()
    hit = cache.get(key)
    if hit is not None:
        content, content_type = hit
        return HttpResponse(content, content_type=content_type)
    response = render()
    if response.status_code == 200:
        cache.set(key, (response.content, response["Content-Type"]), PAGE_CACHE_SECONDS)
    return response
