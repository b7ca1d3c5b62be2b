"""The REST API's OpenAPI schema (drf-spectacular): what each endpoint takes and answers.

Views say what they answer with ``extend_schema`` and which domain errors they raise with
``raises``. ``AutoSchema`` adds the errors that follow from a view's configuration: 401 where it
needs a login, 403 ``csrf_failed`` where a browser's session counts, 415 on every unsafe method,
400 and 413 where a body is parsed, 404 where the path names something, 429 where it is
throttled. Each error status is documented once per operation, as the one ``Error`` envelope
with ``error`` limited to the codes that operation can answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny

from bokehsite import wire
from bokehsite.errors import ApiError

ErrorCode = tuple[int, str]

# The error envelope of ``bokehsite.errors``.
ERROR = {
    "type": "object",
    "description": "Every error, whatever the endpoint: a machine code, a sentence, the field at fault.",
    "properties": {
        "error": {"type": "string", "description": "What went wrong, as a machine code."},
        "detail": {"type": "string", "description": "What went wrong, as a sentence for people."},
        "field": {"type": "string", "nullable": True, "description": "The field or parameter at fault, if one is."},
        "fields": {
            "type": "object", "additionalProperties": {},
            "description": "Validation errors (`invalid`) only: every field's messages.",
        },
        "current_version": {"type": "integer", "description": "`version_conflict` only: the document's version."},
        "quota": {"type": "integer", "description": "`quota_exceeded` for documents only: the account's quota, in bytes."},
        "used": {"type": "integer", "description": "`quota_exceeded` for documents only: the bytes its documents take."},
    },
    "required": ["error", "detail", "field"],
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}

# What the errors that are not domain errors (ApiError) answer with.
INVALID: ErrorCode = (400, "invalid")
MALFORMED_JSON: ErrorCode = (400, "malformed_json")
MALFORMED_BUNDLE: ErrorCode = (400, "malformed_bundle")
NOT_AUTHENTICATED: ErrorCode = (401, "not_authenticated")
INVALID_TOKEN: ErrorCode = (401, "invalid_token")
CSRF_FAILED: ErrorCode = (403, "csrf_failed")
NOT_FOUND: ErrorCode = (404, "not_found")
NOT_ACCEPTABLE: ErrorCode = (406, "not_acceptable")
TOO_LARGE: ErrorCode = (413, "too_large")
UNSUPPORTED_MEDIA_TYPE: ErrorCode = (415, "unsupported_media_type")
THROTTLED: ErrorCode = (429, "throttled")

REASONS = {
    400: "The request is malformed or a field is wrong",
    401: "Not logged in, or the credentials do not check out",
    403: "Not allowed",
    404: "No such thing, or none the caller may see",
    406: "The Accept header asks for a media type this endpoint does not answer with",
    409: "Conflicts with what is stored",
    410: "Gone from the document's history",
    413: "The body is over the size limit, or what it would store is over the account's quota",
    415: "The body's media type is not one this endpoint parses",
    429: "Too many attempts; Retry-After says when to try again",
    422: "The document could not be drawn",
    501: "This server cannot do this (it lacks a program it needs)",
}

BUNDLE = wire.CONTENT_TYPE
BINARY = OpenApiTypes.BINARY

# A secret link's key: every document endpoint accepts it.
SECRET_LINK_KEY = OpenApiParameter(
    "key", str, OpenApiParameter.QUERY, required=False,
    description="The key of the document's secret link, for callers who have only the link.",
)


def raises(*errors: type[ApiError] | type[exceptions.APIException] | ErrorCode) -> Callable:
    """Declare the errors a view method can answer with, beyond those its configuration implies."""

    def declare(method: Callable) -> Callable:
        method.api_errors = (*getattr(method, "api_errors", ()), *map(_code_of, errors))
        return method

    return declare


def _code_of(error: type[ApiError] | type[exceptions.APIException] | ErrorCode) -> ErrorCode:
    if isinstance(error, tuple):
        return error
    if issubclass(error, ApiError):
        return (error.status_code, error.code)
    return (error.status_code, error.default_code)


def body(json: Any, bundle: bool = True) -> dict[str, Any]:
    """A request body: JSON described by ``json``, or (``bundle``) the same as a binary bundle."""
    return {"application/json": json, BUNDLE: BINARY} if bundle else {"application/json": json}


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        codes: dict[int, set[str]] = defaultdict(set)
        for status, code in self._error_codes():
            codes[status].add(code)
        for status, names in sorted(codes.items()):
            listed = ", ".join(f"`{name}`" for name in sorted(names))
            responses[str(status)] = {
                "description": f"{REASONS.get(status, 'Error')}: {listed}.",
                "content": {"application/json": {"schema": {
                    "allOf": [ERROR_REF, {"type": "object", "properties": {"error": {"enum": sorted(names)}}}],
                }}},
            }
        return responses

    def _error_codes(self) -> list[ErrorCode]:
        view_method = getattr(self.view, self.method.lower(), None)
        codes = list(getattr(view_method, "api_errors", ()))
        codes.append(NOT_ACCEPTABLE)
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += [NOT_AUTHENTICATED, INVALID_TOKEN]
        unsafe = self.method not in ("GET", "HEAD", "OPTIONS")
        if unsafe:
            codes.append(UNSUPPORTED_MEDIA_TYPE)
            if any(isinstance(a, SessionAuthentication) for a in self.view.get_authenticators()):
                codes.append(CSRF_FAILED)
        request_body = self._get_request_body() if unsafe else None
        if request_body is not None:
            codes += [MALFORMED_JSON, INVALID, TOO_LARGE]
            if BUNDLE in request_body["content"]:
                codes.append(MALFORMED_BUNDLE)
        if "{" in self.path:
            codes.append(NOT_FOUND)
        if self.view.get_throttles():
            codes.append(THROTTLED)
        return codes


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        scheme = build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")
        scheme["description"] = ("An API token: `Authorization: Token <secret>` or `Bearer <secret>`. "
                                 "Multi-user mode only; in single-user mode nothing is needed.")
        return scheme


class BrowserSessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME,
                "description": "A logged-in browser's session; unsafe methods also need the CSRF token."}


def add_error_component(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: the ``Error`` component every error response refers to."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    return result
