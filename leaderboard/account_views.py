"""Confirming a submitter's e-mail address: the link's landing page and "send the link again".

The rules (signed links, canonical addresses) live in verification.py; the rate limit in throttle.py.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from leaderboard import throttle, verification


def confirm_email(request: HttpRequest, token: str) -> HttpResponse:
    result = verification.confirm(token)
    ok = result.outcome in (verification.Outcome.CONFIRMED, verification.Outcome.ALREADY)
    return render(request, "registration/confirm_email_result.html", {"result": result, "ok": ok},
                  status=200 if ok else 400)


@require_POST
@login_required
def send_confirmation(request: HttpRequest) -> HttpResponse:
    user = request.user
    if verification.is_verified(user):
        messages.info(request, "Your address is already confirmed.")
    elif not user.email:
        messages.error(request, "Your account has no e-mail address; ask the maintainers to add one.")
    else:
        verdict = throttle.hit("confirmation-mail", f"user:{user.pk}", settings.CONFIRMATION_MAIL_RATE)
        if verdict.allowed:
            verification.send_confirmation(request, user)
            messages.success(request, f"We sent a new link to {user.email}.")
        else:
            messages.error(request, f"A link was sent a moment ago; check your mailbox (and its spam folder), or "
                                    f"ask again in {verdict.wait_words()}.")
    return redirect("leaderboard:submit")
