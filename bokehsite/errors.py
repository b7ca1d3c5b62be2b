"""The one error envelope: every refusal, over HTTP or the websocket, carries the same members.

Domain code raises ``ApiError`` subclasses (see ``documents/exceptions.py``,
``accounts/exceptions.py``). Over HTTP the body is ``envelope(error)``:
``{"error": CODE, "detail": SENTENCE, "field": NAME_OR_NULL, ...}`` (``bokehsite.error_handler``
turns DRF's own exceptions into it); over the websocket it is the same, as an ``error`` message
(``bokehsite.protocol.Error.from_envelope``).
"""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import status

from bokehsite import metrics, protocol


class ApiError(Exception):
    """A domain error with a machine code, a human sentence and, when it has one, a field."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None, **extra: object):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra  # more members of the error body, e.g. the current version on a conflict
        if code:
            self.code = code


# The statuses the domains answer with; each domain error names its own code.
class Unauthorized(ApiError):
    """No credentials, or credentials that do not check out."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "not_authenticated"


class Forbidden(ApiError):
    """The caller is known, and may not do this."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class NotFound(ApiError):
    """No such thing, or none the caller may know of."""

    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(ApiError):
    """The request is well formed but clashes with what is stored."""

    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class PayloadTooLarge(ApiError):
    """A body, a frame or a decoded array over ``BOKEHSITE_MAX_BODY_BYTES``."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class QuotaExceeded(ApiError):
    """What a write would store passes the account's quota; nothing was stored."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "quota_exceeded"


class Unavailable(ApiError):
    """Something the server needs (the database) does not answer; nothing was stored. Try again."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = protocol.UNAVAILABLE


class ServerFault(ApiError):
    """Something failed on our side; the traceback is in the log, never in the answer."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    code = "server_error"

    def __init__(self, detail: str = "the server failed to answer; the error is logged", **kwargs: Any):
        super().__init__(detail, **kwargs)


def from_exception(error: BaseException) -> ApiError | None:
    """The refusal to answer for an exception that is not the caller's fault but passes: the
    database is down or restarting (``None`` for anything else)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, (OperationalError, InterfaceError)):
        return Unavailable("the database is not answering; nothing was stored, try again shortly")
    return None


def envelope(error: ApiError) -> dict[str, Any]:
    return body(error.code, error.detail, error.field, **error.extra)


def body(code: str, detail: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The envelope's members, for errors that are not ``ApiError`` instances (DRF's own)."""
    metrics.error_answered(code)  # every error answer, HTTP or websocket, is made here
    return {"error": code, "detail": detail, "field": field, **extra}


def json_response(error: ApiError) -> JsonResponse:
    """The envelope of ``error`` as a plain Django answer (pages' JSON endpoints, error pages)."""
    return JsonResponse(envelope(error), status=error.status_code)
