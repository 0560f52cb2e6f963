from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from leaderboard import account_views, submission_views

admin.site.site_header = "LongCtx Leaderboard admin"
admin.site.site_title = "LongCtx admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages that name none (the admin's): answer instead of a 404.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("accounts/signup/", submission_views.signup, name="signup"),
    path("accounts/confirm/", account_views.send_confirmation, name="send-confirmation"),
    path("accounts/confirm/<str:token>/", account_views.confirm_email, name="confirm-email"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("leaderboard.urls")),
]
