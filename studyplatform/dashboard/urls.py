from django.urls import path

from studyplatform.dashboard import views
from studyplatform.dashboard.manage import training as manage_training
from studyplatform.dashboard.manage import views as manage

app_name = "dashboard"

urlpatterns = [
    path("", views.study_list, name="studies"),
    path("plotly-<str:version>.min.js", views.plotly_js, name="plotly_js"),
    path("<slug:slug>/", views.study_dashboard, name="study"),
    path("<slug:slug>/report/", views.analysis_report, name="report"),
    path("<slug:slug>/report/status/", views.analysis_status, name="report_status"),
    path("<slug:slug>/report/retry/", views.analysis_retry, name="report_retry"),
    path("<slug:slug>/export/", views.export, name="export"),
    path("<slug:slug>/export/jobs/", views.export_jobs_status, name="export_jobs_status"),
    path(
        "<slug:slug>/export/jobs/<int:job_id>/download/",
        views.export_download,
        name="export_download",
    ),
    path("<slug:slug>/planning/", views.power_planning, name="planning"),
    # The coordinators' pages: readers, enrolment and groups, the study's sites, site tokens.
    path("<slug:slug>/manage/", manage.home, name="manage"),
    path("<slug:slug>/manage/readers/", manage.readers, name="manage_readers"),
    path("<slug:slug>/manage/readers/create/", manage.reader_create, name="manage_reader_create"),
    path("<slug:slug>/manage/readers/invite/", manage.reader_invite, name="manage_reader_invite"),
    path("<slug:slug>/manage/readers/enrol/", manage.enrol, name="manage_enrol"),
    path(
        "<slug:slug>/manage/readers/<int:enrolment_id>/unenrol/",
        manage.unenrol,
        name="manage_unenrol",
    ),
    path("<slug:slug>/manage/readers/groups/", manage.groups, name="manage_groups"),
    path("<slug:slug>/manage/training/", manage_training.training, name="manage_training"),
    path(
        "<slug:slug>/manage/training/cases/",
        manage_training.training_cases,
        name="manage_training_cases",
    ),
    path(
        "<slug:slug>/manage/training/<int:enrolment_id>/waive/",
        manage_training.training_waive,
        name="manage_training_waive",
    ),
    path("<slug:slug>/manage/sites/", manage.sites, name="manage_sites"),
    path("<slug:slug>/manage/sites/<int:site_id>/", manage.site_rename, name="manage_site_rename"),
    path("<slug:slug>/manage/tokens/", manage.tokens, name="manage_tokens"),
    path(
        "<slug:slug>/manage/tokens/<int:token_id>/revoke/",
        manage.token_revoke,
        name="manage_token_revoke",
    ),
]
