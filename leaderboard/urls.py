from django.urls import path

from leaderboard import api, submission_views, views

app_name = "leaderboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("leaderboard.csv", api.leaderboard_csv, name="leaderboard-csv"),
    path("models/<int:submission_id>/", views.model_detail, name="model"),
    path("models/<int:submission_id>/samples.csv", api.samples_csv, name="samples-csv"),
    path("compare/", views.compare, name="compare"),
    path("versions/", views.versions, name="versions"),
    path("versions/<slug:slug>/", views.version_detail, name="version"),
    path("versions/<slug:slug>/samples/", views.version_samples, name="version-samples"),
    path("status/", views.status, name="status"),
    path("status/workers.json", views.workers_status, name="workers-status"),
    path("healthz", views.healthz, name="healthz"),
    path("submit/", submission_views.submit, name="submit"),
    path("submissions/", submission_views.my_submissions, name="my-submissions"),
    path("submissions/<int:submission_id>/", submission_views.submission_status, name="submission"),
    path("submissions/<int:submission_id>/progress.json", submission_views.submission_progress,
         name="submission-progress"),
    path("submissions/<int:submission_id>/actions", submission_views.submission_action, name="submission-action"),
    path("api/v1/", api.index, name="api-index"),
    path("api/v1/versions", api.versions, name="api-versions"),
    path("api/v1/leaderboard", api.leaderboard, name="api-leaderboard"),
    path("api/v1/submissions/<int:submission_id>", api.submission, name="api-submission"),
    path("api/v1/openapi.json", api.openapi, name="api-openapi"),
]
