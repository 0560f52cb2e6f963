from django.urls import path

from leaderboard import views

app_name = "leaderboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("versions/<slug:slug>/", views.version_detail, name="version"),
    path("status/workers.json", views.workers_status, name="workers-status"),
    path("healthz", views.healthz, name="healthz"),
]
