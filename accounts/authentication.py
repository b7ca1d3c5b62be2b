from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from accounts import tokens
from accounts.users import default_user, multi_user

# Unauthenticated API calls answer 401 with this challenge (DRF asks the first authentication class).
CHALLENGE = 'Token realm="bokehsite"'


class SingleUserAuthentication(BaseAuthentication):
    """In single-user mode every API request is ``defaultuser``; in multi-user mode it abstains."""

    def authenticate(self, request):
        if multi_user():
            return None
        return (default_user(), None)

    def authenticate_header(self, request):
        return CHALLENGE


class TokenAuthentication(BaseAuthentication):
    """``Authorization: Token <secret>`` (or ``Bearer <secret>``) with an API token.

    ``request.auth`` is then the ``ApiToken``. A header that names a token which is unknown,
    revoked or expired answers 401; no header lets the next authentication class try.
    """

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.split(" ", 1)[0].lower() not in tokens.SCHEMES:
            return None
        secret = tokens.secret_from_authorization(header)
        token = tokens.authenticate_token(secret) if secret else None
        if token is None:
            raise exceptions.AuthenticationFailed("the API token is invalid, expired or revoked", code="invalid_token")
        return (token.user, token)

    def authenticate_header(self, request):
        return CHALLENGE
