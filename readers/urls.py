"""The readers' URLs: the worklist, and everything keyed by the reader's own assignment."""

from django.urls import path

from readers import views

urlpatterns = [
    path("", views.home, name="home"),
    path("training/<slug:slug>/", views.training, name="readers-training"),
    path("sessions/<int:session_id>/continue/", views.continue_session, name="readers-continue"),
    path("assignments/<int:pk>/", views.assignment, name="readers-assignment"),
    path("assignments/<int:pk>/draft/", views.draft, name="readers-draft"),
    path("assignments/<int:pk>/submit/", views.submit, name="readers-submit"),
    path(
        "assignments/<int:pk>/images/<int:position>/pixels/",
        views.pixels,
        name="readers-pixels",
    ),
    path(
        "cases/<int:case>/images/<int:position>/pixels/",
        views.case_pixels,
        name="readers-case-pixels",
    ),
    path("assignments/<int:pk>/heatmap/", views.heatmap, name="readers-heatmap"),
    path(
        "assignments/<int:pk>/heatmap/<int:position>/",
        views.slice_heatmap,
        name="readers-slice-heatmap",
    ),
    path("assignments/<int:pk>/correct/", views.correct, name="readers-correct"),
]
