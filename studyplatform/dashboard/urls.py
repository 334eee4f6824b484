from django.urls import path

from studyplatform.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.study_list, name="studies"),
    path("plotly-<str:version>.min.js", views.plotly_js, name="plotly_js"),
    path("<slug:slug>/", views.study_dashboard, name="study"),
    path("<slug:slug>/report/", views.analysis_report, name="report"),
    path("<slug:slug>/report/status/", views.analysis_status, name="report_status"),
    path("<slug:slug>/report/retry/", views.analysis_retry, name="report_retry"),
    path("<slug:slug>/export/", views.export, name="export"),
    path("<slug:slug>/planning/", views.power_planning, name="planning"),
]
