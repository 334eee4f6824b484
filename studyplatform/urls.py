"""The URLconf: the only core module that imports the front ends."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

import readers.urls
from studyplatform.accounts import views as account_views
from studyplatform.dashboard import views as dashboard_views

admin.site.site_header = "Reader-study platform"
admin.site.site_title = "Reader-study platform"
admin.site.index_title = "Trial administration"
admin.site.index_template = "dashboard/admin_index.html"  # links the dashboard

urlpatterns = [
    path("login/", account_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("studyplatform.accounts.urls")),
    # The one-time password-set link a coordinator gives a new reader (Django's reset tokens).
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("health/", dashboard_views.health, name="health"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("studyplatform.dashboard.urls")),
    path("api/", include("studyplatform.studies.api")),
    path("dicomweb/", include("studyplatform.studies.dicomweb.stow")),
    path("", include(readers.urls)),
]
