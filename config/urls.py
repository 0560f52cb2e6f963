from django.contrib import admin
from django.urls import include, path

from leaderboard import account_views, submission_views

admin.site.site_header = "LongCtx Leaderboard admin"
admin.site.site_title = "LongCtx admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/signup/", submission_views.signup, name="signup"),
    path("accounts/confirm/", account_views.send_confirmation, name="send-confirmation"),
    path("accounts/confirm/<str:token>/", account_views.confirm_email, name="confirm-email"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("leaderboard.urls")),
]
