"""Single sign-on with OpenID Connect, on mozilla-django-oidc: the relying party's side.

mozilla-django-oidc runs the authorization code flow (state, nonce and PKCE kept in the session)
and verifies the ID token: its RS256 signature with a key of the provider's JWKS, its expiry
and its nonce. Here we add what it leaves to its users:

- the provider's endpoints, discovered from ``<issuer>/.well-known/openid-configuration`` on
  first use (``provider()``), with a clear error when it cannot be reached;
- the ID token's issuer and audience checked too;
- the account and its groups, from the claims (``accounts.sso``).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts import sso

log = logging.getLogger(__name__)

# The discovery document's keys, under the names of mozilla-django-oidc's settings.
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


class ProviderUnreachable(Exception):
    """The provider's discovery document could not be read; the message says where and why."""


def enabled() -> bool:
    return bool(settings.BOKEHSITE_OIDC_ISSUER)


def provider_name() -> str:
    return settings.BOKEHSITE_OIDC_PROVIDER_NAME or urlsplit(settings.BOKEHSITE_OIDC_ISSUER).hostname or "single sign-on"


def discovery_url(issuer: str) -> str:
    return f"{issuer.rstrip('/')}/.well-known/openid-configuration"


@cache
def _discover(issuer: str) -> dict[str, Any]:
    url = discovery_url(issuer)
    try:
        response = requests.get(url, timeout=settings.BOKEHSITE_OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as e:
        raise ProviderUnreachable(f"cannot read the OpenID provider's configuration at {url}: {e}") from None
    missing = [key for key in ENDPOINTS.values() if not isinstance(document.get(key), str)]
    if missing:
        raise ProviderUnreachable(f"the OpenID provider's configuration at {url} lacks {', '.join(missing)}")
    if document.get("issuer") != issuer:
        raise ProviderUnreachable(f"the OpenID provider at {url} calls itself {document.get('issuer')!r}, "
                                  f"not {issuer!r} (BOKEHSITE_OIDC_ISSUER must be its issuer exactly)")
    return document


def provider() -> dict[str, Any]:
    """The configured provider's discovery document, read once per process (a failure is not
    kept: the next sign-in tries again).

    Raises:
        ProviderUnreachable: it cannot be read, or is not the configured issuer's.
    """
    return _discover(settings.BOKEHSITE_OIDC_ISSUER)


def setting(name: str, *default: Any) -> Any:
    """mozilla-django-oidc's settings, its endpoints discovered instead of configured."""
    if name in ENDPOINTS:
        return provider()[ENDPOINTS[name]]
    return import_from_settings(name, *default)


class Backend(OIDCAuthenticationBackend):
    """Signs in the identity whose ID token the callback verified; ``accounts.sso`` decides who that is."""

    get_settings = staticmethod(setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django makes a backend for every authenticate() call, password logins included: the
        # provider is asked only when a sign-in needs its endpoints.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: setting("OIDC_OP_TOKEN_ENDPOINT"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: setting("OIDC_OP_USER_ENDPOINT"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: setting("OIDC_OP_JWKS_ENDPOINT"))

    def authenticate(self, request, **kwargs: Any):
        # Only the callback view, which passes the nonce it kept, signs in through here.
        if request is None or "nonce" not in kwargs:
            return None
        return super().authenticate(request, **kwargs)

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        """The ID token's claims once its signature, algorithm, expiry, issuer and audience check."""
        try:
            return jwt.decode(payload, key, algorithms=[self.OIDC_RP_SIGN_ALGO], audience=self.OIDC_RP_CLIENT_ID,
                              issuer=settings.BOKEHSITE_OIDC_ISSUER, options={"require": ["exp", "iat", "sub"]})
        except jwt.ExpiredSignatureError:
            raise SuspiciousOperation("the ID token has expired") from None
        except jwt.InvalidTokenError as e:
            raise SuspiciousOperation(f"the ID token is invalid: {e}") from None

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("the provider's userinfo is about another subject than its ID token")
        try:
            return sso.sign_in(settings.BOKEHSITE_OIDC_ISSUER, {**payload, **userinfo})
        except sso.SsoRefused as e:
            raise SuspiciousOperation(str(e)) from None


class _OnlyWhenEnabled:
    def dispatch(self, request, *args: Any, **kwargs: Any):
        if not enabled():
            raise Http404("single sign-on is not configured on this server")
        return super().dispatch(request, *args, **kwargs)


def _failed(request, reason: str, status: int):
    log.warning("single sign-on failed: %s", reason)
    return render(request, "accounts/sso_failed.html", {"reason": reason, "provider_name": provider_name()},
                  status=status)


class Authenticate(_OnlyWhenEnabled, OIDCAuthenticationRequestView):
    """``/oidc/authenticate/``: sends the browser to the provider, with a new state and nonce."""

    get_settings = staticmethod(setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)  # the endpoint is read in get()
        self.OIDC_RP_CLIENT_ID = getattr(settings, "OIDC_RP_CLIENT_ID", None)

    def get(self, request):
        try:
            self.OIDC_OP_AUTH_ENDPOINT = setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except ProviderUnreachable as e:
            return _failed(request, str(e), 502)
        return super().get(request)


class Callback(_OnlyWhenEnabled, OIDCAuthenticationCallbackView):
    """``/oidc/callback/``: where the provider sends the browser back; the redirect URI to register."""

    get_settings = staticmethod(setting)

    def get(self, request):
        try:
            return super().get(request)
        except SuspiciousOperation as e:  # a state this browser did not start, a bad nonce, a bad token
            return _failed(request, str(e), 400)
        except ProviderUnreachable as e:
            return _failed(request, str(e), 502)
        except requests.RequestException as e:
            return _failed(request, f"the OpenID provider did not answer as expected: {e}", 502)

    def login_failure(self):
        messages.error(self.request, f"Logging in with {provider_name()} failed.")
        return HttpResponseRedirect(self.failure_url)
