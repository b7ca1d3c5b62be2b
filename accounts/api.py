"""Accounts API: register, log in, log out, the account itself, and API tokens. ``accounts.tokens`` decides."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import tokens
from accounts.credentials import Credentials
from accounts.exceptions import InvalidCredentials, LocalLoginDisabled, RegistrationClosed, TokenNotFound, UsernameTaken
from accounts.models import ApiToken
from accounts.secrets import expires_in
from accounts.serializers import (
    AccountSerializer, CreateTokenSerializer, CredentialsSerializer, NewTokenSerializer, RegisterSerializer, TokenAnswerSerializer,
    TokenSerializer,
)
from accounts.throttling import AuthRateThrottle
from accounts.users import local_login, register_user
from bokehsite.openapi import body, raises
from documents import quota


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _token_answer(user, name: str, status_code: int) -> Response:
    token, secret = tokens.create_token(user, name)
    body = {"token": secret, "username": user.get_username(), "token_id": token.id, "prefix": token.prefix}
    return Response(body, status=status_code)


class _CredentialsView(APIView):
    # No authentication: a stale token saved by the client must not stop it from logging in again.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthRateThrottle]


@extend_schema(tags=["accounts"])
class Register(_CredentialsView):
    """POST {username, password}: create an account; answers with a new API token."""

    throttle_scope = "register"

    @extend_schema(summary="Create an account", request=body(RegisterSerializer, bundle=False),
                   responses={201: TokenAnswerSerializer}, auth=[])
    @raises(RegistrationClosed, UsernameTaken)
    def post(self, request: Request) -> Response:
        data = _valid(RegisterSerializer, request)
        user = register_user(data["username"], data["password"])
        return _token_answer(user, data.get("token_name") or "registration", status.HTTP_201_CREATED)


@extend_schema(tags=["accounts"])
class Login(_CredentialsView):
    """POST {username, password}: answers with a new API token."""

    throttle_scope = "login"

    @extend_schema(summary="Log in: a new API token", request=body(CredentialsSerializer, bundle=False),
                   responses=TokenAnswerSerializer, auth=[])
    @raises(InvalidCredentials, LocalLoginDisabled)
    def post(self, request: Request) -> Response:
        if not local_login():
            raise LocalLoginDisabled("this server takes no passwords: log in with single sign-on in a browser "
                                     "(Session.login_browser()), or use an API token")
        data = _valid(CredentialsSerializer, request)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            raise InvalidCredentials("wrong username or password")
        return _token_answer(user, data.get("token_name") or "login", status.HTTP_200_OK)


@extend_schema(tags=["accounts"])
class Logout(APIView):
    """POST: revoke the API token this request carries."""

    @extend_schema(summary="Log out: revoke the API token used", request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        if token is None:
            # Single-user mode authenticates everyone as defaultuser without looking at tokens.
            token = tokens.authenticate_token(Credentials.from_request(request).api_token)
        if token is not None:
            tokens.revoke_token(token)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["accounts"])
class Account(APIView):
    """GET: who the caller is, and what their documents take of their storage quota."""

    @extend_schema(summary="The caller's account and storage", responses=AccountSerializer)
    def get(self, request: Request) -> Response:
        storage = quota.usage(request.user.pk)
        return Response(AccountSerializer({"username": request.user.get_username(), "storage_used": storage.used,
                                           "storage_quota": storage.quota}).data)


@extend_schema(tags=["tokens"])
class TokenList(APIView):
    """GET: the caller's tokens (never their secrets). POST {name, expires?}: create one."""

    @extend_schema(summary="The caller's API tokens", responses=TokenSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(TokenSerializer(tokens.tokens_of(request.user), many=True).data)

    @extend_schema(summary="Create an API token", request=body(CreateTokenSerializer, bundle=False),
                   responses={201: NewTokenSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(CreateTokenSerializer, request)
        expires = expires_in(data.get("expires_in_days")) or data.get("expires")
        token, secret = tokens.create_token(request.user, data["name"], expires=expires)
        return Response({**TokenSerializer(token).data, "token": secret}, status=status.HTTP_201_CREATED)


@extend_schema(tags=["tokens"])
class TokenDetail(APIView):
    """GET: one token. DELETE: revoke it."""

    def _get(self, request: Request, pk) -> ApiToken:
        token = tokens.get_token(request.user, pk)
        if token is None:
            raise TokenNotFound("no such token")
        return token

    @extend_schema(summary="One API token", responses=TokenSerializer)
    def get(self, request: Request, pk) -> Response:
        return Response(TokenSerializer(self._get(request, pk)).data)

    @extend_schema(summary="Revoke an API token", responses={204: None})
    def delete(self, request: Request, pk) -> Response:
        tokens.revoke_token(self._get(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
