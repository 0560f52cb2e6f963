"""Pages for submitters: sign up, submit, my submissions, a submission's status (and its JSON poll), actions.

Thin typed views: the rules live in forms.py, submitting.py, progress.py and moderation.py.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from leaderboard import cost, moderation, progress, submitting, throttle, verification
from leaderboard.client_address import throttle_key
from leaderboard.forms import SignupForm, SubmissionForm
from leaderboard.models import Submission, SubmissionStatus, Visibility

MAX_NOTE = 2000
Action = Callable[[Submission, AbstractBaseUser, str], Submission]

# name -> (who may do it, what it does, what to tell them)
ACTIONS: dict[str, tuple[tuple[str, ...], Action, str]] = {
    "cancel": (("owner", "staff"), lambda s, u, n: moderation.cancel(s, u),
               "Cancelled; workers stop within a few samples."),
    "withdraw": (("owner",), lambda s, u, n: moderation.withdraw(s, u), "Withdrawn from the public leaderboard."),
    "approve": (("staff",), lambda s, u, n: moderation.approve(s, u), "Approved and queued."),
    "reject": (("staff",), lambda s, u, n: moderation.reject(s, u, n), "Rejected; the submitter sees the reason."),
    "rerun": (("staff",), lambda s, u, n: moderation.rerun(s, u),
              "Queued again. The API key was erased when it ended: an endpoint that needs one will fail the probe."),
    "flag": (("staff",), lambda s, u, n: moderation.flag(s, u, n), "Flagged with a public note."),
    "hide": (("staff",), lambda s, u, n: moderation.hide(s, u), "Hidden from the leaderboard."),
    "show": (("staff",), lambda s, u, n: moderation.set_visibility(s, u, Visibility.PUBLIC),
             "Public on the leaderboard again."),
    "baseline": (("staff",), lambda s, u, n: moderation.set_baseline(s, u, True), "Marked as a baseline."),
    "unbaseline": (("staff",), lambda s, u, n: moderation.set_baseline(s, u, False), "No longer a baseline."),
}


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    ok = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                         require_https=request.is_secure())
    return target if ok else fallback


@sensitive_post_parameters("password1", "password2")
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("leaderboard:my-submissions")
    form = SignupForm(request.POST if request.method == "POST" else None)
    refusal = None
    if request.method == "POST" and form.is_valid():
        verdict = throttle.hit("signup", throttle_key(request), settings.SIGNUP_RATE)
        if verdict.allowed:
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            verification.send_confirmation(request, user)
            messages.success(request, f"Welcome, {user.get_username()}. We sent a link to {user.email}: open it to "
                                      "confirm the address before your first submission.")
            return redirect(_safe_next(request, reverse("leaderboard:submit")))
        refusal = verdict
    response = render(request, "registration/signup.html", {
        "form": form, "next": _safe_next(request, ""),
        "refusal": f"Too many accounts were created from your network address recently; try again in "
                   f"{refusal.wait_words()}." if refusal else "",
    }, status=429 if refusal else 200)
    return _with_retry_after(response, refusal)


def _with_retry_after(response: HttpResponse, verdict: throttle.Verdict | None) -> HttpResponse:
    if verdict is not None and not verdict.allowed:
        response["Retry-After"] = str(verdict.retry_after)
    return response


@login_required
@sensitive_post_parameters("api_key")
def submit(request: HttpRequest) -> HttpResponse:
    quota = submitting.quota_for(request.user)
    verified = verification.is_verified(request.user)
    posted = request.method == "POST"
    form = SubmissionForm(request.POST if posted else None)
    duplicate, refusal, verdict, status = None, "", None, 200
    if posted and not verified:  # refused before anything is checked or counted
        refusal, status = submitting.UNVERIFIED, 403
    elif posted:
        verdict = throttle.hit("submit", throttle_key(request), settings.SUBMIT_RATE)
        if not verdict.allowed:
            refusal, status = (f"Too many submission attempts from your network address; try again in "
                               f"{verdict.wait_words()}."), 429
        elif form.is_valid():
            try:
                sub = submitting.create(request.user, form.to_request())
            except submitting.SubmissionRefused as exc:
                form.add_error(exc.field, str(exc))
                duplicate = exc.existing
            else:
                messages.success(request, f"Submission #{sub.pk} is in. This page follows it as it runs.")
                return redirect("leaderboard:submission", submission_id=sub.pk)
        status = 400 if status == 200 else status
    if refusal:  # nothing was checked: show what was typed (never the key) without judging it
        kept = request.POST.copy()
        kept.pop("api_key", None)
        form = SubmissionForm(initial=kept)
    costs = [(v, cost.estimate(v, kind="endpoint")) for v in form.versions]
    response = render(request, "leaderboard/submit.html", {
        "form": form, "quota": quota, "duplicate": duplicate, "versions": form.versions,
        "allow_private": settings.ALLOW_PRIVATE_ENDPOINTS, "verified": verified, "refusal": refusal,
        "costs": costs,
        "cost_data": {v.slug: {"requests": c.requests, "prompt_tokens": c.prompt_tokens,
                               "new_tokens_max": c.new_tokens_max, "offered": v.kv_offered()} for v, c in costs},
    }, status=status)
    return _with_retry_after(response, verdict)


@login_required
def my_submissions(request: HttpRequest) -> HttpResponse:
    subs = (Submission.objects.filter(submitter=request.user).select_related("model", "version")
            .annotate(done=Sum("cells__samples_done"), total=Sum("cells__samples_total")))
    return render(request, "leaderboard/my_submissions.html", {
        "subs": subs, "quota": submitting.quota_for(request.user),
    })


def _visible(request: HttpRequest, submission_id: int) -> tuple[Submission, progress.Role]:
    sub = get_object_or_404(Submission.objects.select_related("model", "version", "submitter"), pk=submission_id)
    role = progress.role_of(request.user, sub)
    if not progress.can_see(role, sub):
        raise Http404("No such submission.")
    return sub, role


@never_cache
def submission_status(request: HttpRequest, submission_id: int) -> HttpResponse:
    sub, role = _visible(request, submission_id)
    allowed = [name for name, (roles, _, _) in ACTIONS.items() if role in roles and _applies(name, sub)]
    return render(request, "leaderboard/submission.html", {
        "sub": sub, "entry": sub.model, "role": role, "private": role != "public",
        "snap": progress.snapshot(sub, role), "events": progress.events_for(sub, role),
        "actions": allowed, "poll_ms": int(settings.STATUS_POLL_SECONDS * 1000),
        "cost": cost.for_submission(sub) if role != "public" else None,
    })


def _applies(name: str, sub: Submission) -> bool:
    """Offer only the buttons that make sense now (the functions still check, under a lock)."""
    status, vis = sub.status, sub.visibility
    return {
        "cancel": status in SubmissionStatus.active(),
        "withdraw": status == SubmissionStatus.COMPLETED and vis != Visibility.HIDDEN,
        "approve": status == SubmissionStatus.PENDING_REVIEW,
        "reject": status == SubmissionStatus.PENDING_REVIEW,
        "rerun": status in (SubmissionStatus.COMPLETED, SubmissionStatus.FAILED, SubmissionStatus.CANCELLED),
        "flag": status == SubmissionStatus.COMPLETED,
        "hide": vis != Visibility.HIDDEN and status == SubmissionStatus.COMPLETED,
        "show": vis != Visibility.PUBLIC,
        "baseline": not sub.is_baseline and status == SubmissionStatus.COMPLETED,
        "unbaseline": sub.is_baseline,
    }[name]


@never_cache
def submission_progress(request: HttpRequest, submission_id: int) -> JsonResponse:
    sub, role = _visible(request, submission_id)
    return JsonResponse(progress.snapshot(sub, role))


@require_POST
@login_required
def submission_action(request: HttpRequest, submission_id: int) -> HttpResponse:
    sub, role = _visible(request, submission_id)
    name = request.POST.get("action", "")
    if name not in ACTIONS:
        return HttpResponseBadRequest("Unknown action.")
    roles, act, done = ACTIONS[name]
    if role not in roles:
        raise PermissionDenied("Only the submitter or the maintainers can do this.")
    note = request.POST.get("note", "").strip()
    if len(note) > MAX_NOTE:
        messages.error(request, f"Keep the note under {MAX_NOTE} characters.")
    elif "\x00" in note:
        messages.error(request, "The note contains a null character.")
    else:
        try:
            act(sub, request.user, note)
        except moderation.ActionNotAllowed as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, done)
    return redirect("leaderboard:submission", submission_id=sub.pk)
