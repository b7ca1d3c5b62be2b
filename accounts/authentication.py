from rest_framework import authentication, exceptions
from rest_framework.authentication import BaseAuthentication

from accounts import tokens
from accounts.credentials import Credentials
from accounts.exceptions import CsrfFailed
from accounts.users import default_user, multi_user

# Unauthenticated API calls answer 401 with this challenge (DRF asks the first authentication class).
CHALLENGE = 'Token realm="bokehsite"'


# Headers only browsers send (scripts cannot set Origin or Sec-Fetch-*); the Python client sends none.
BROWSER_HEADERS = ("HTTP_COOKIE", "HTTP_ORIGIN", "HTTP_SEC_FETCH_SITE")


def from_a_browser(request) -> bool:
    return any(request.META.get(header) for header in BROWSER_HEADERS)


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication; a failed CSRF check answers ``csrf_failed``."""

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as e:
            raise CsrfFailed(str(e.detail)) from None


class SingleUserAuthentication(SessionAuthentication):
    """In single-user mode every API request is ``defaultuser``; in multi-user mode it abstains.

    Nobody logs in, so any page a browser has open could otherwise act as ``defaultuser``: a
    browser's unsafe request must pass Django's CSRF check, as a session's does (``Origin`` of
    this site or ``CSRF_TRUSTED_ORIGINS``, and the CSRF token). Scripts send no cookies, no
    ``Origin`` and no ``Sec-Fetch-Site``, and are not asked for a token.
    """

    def authenticate(self, request):
        if multi_user():
            return None
        if from_a_browser(request):
            self.enforce_csrf(request)  # safe methods pass
        return (default_user(), None)

    def authenticate_header(self, request):
        return CHALLENGE


class TokenAuthentication(BaseAuthentication):
    """``Authorization: Token <secret>`` (or ``Bearer <secret>``) with an API token.

    ``request.auth`` is then the ``ApiToken``. A header that names a token which is unknown,
    revoked or expired answers 401; no header lets the next authentication class try.
    """

    def authenticate(self, request):
        credentials = Credentials.from_request(request)
        if not credentials.names_api_token:
            return None
        token = tokens.authenticate_token(credentials.api_token)
        if token is None:
            raise exceptions.AuthenticationFailed("the API token is invalid, expired or revoked", code="invalid_token")
        return (token.user, token)

    def authenticate_header(self, request):
        return CHALLENGE
