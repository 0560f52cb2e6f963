from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "LongCtx Leaderboard admin"
admin.site.site_title = "LongCtx admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("leaderboard.urls")),
]
