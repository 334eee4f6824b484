"""The accounts' pages: staff one-time passwords, and single sign-on when it is configured.

The sign-on routes exist only when OIDC_RP_CLIENT_ID is set: a platform without a provider has
no callback that anyone could probe.
"""

from django.conf import settings
from django.urls import URLPattern, path

from studyplatform.accounts import views

urlpatterns: list[URLPattern] = [
    path("account/totp/enrol/", views.totp_enrol, name="totp_enrol"),
    path("account/totp/verify/", views.totp_verify, name="totp_verify"),
]

if settings.OIDC_ENABLED:
    from studyplatform.accounts import oidc

    urlpatterns += [
        path("sso/authenticate/", oidc.SSORequestView.as_view(), name="oidc_authentication_init"),
        path("sso/callback/", oidc.SSOCallbackView.as_view(), name="oidc_authentication_callback"),
    ]
