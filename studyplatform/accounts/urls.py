"""The accounts' pages: staff one-time passwords."""

from django.urls import URLPattern, path

from studyplatform.accounts import views

urlpatterns: list[URLPattern] = [
    path("account/totp/enrol/", views.totp_enrol, name="totp_enrol"),
    path("account/totp/verify/", views.totp_verify, name="totp_verify"),
]
