"""Single sign-on's pages, under ``/oidc/`` (404 unless an issuer is configured); the provider must
know ``https://<host>/oidc/callback/`` as a redirect URI."""

from django.urls import path

from accounts import oidc

urlpatterns = [
    path("authenticate/", oidc.Authenticate.as_view(), name="oidc_authentication_init"),
    path("callback/", oidc.Callback.as_view(), name="oidc_authentication_callback"),
]
