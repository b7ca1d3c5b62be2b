"""One error envelope for the whole API.

Every 4xx answer is ``{"error": CODE, "detail": SENTENCE, "field": NAME_OR_NULL}``; validation
errors add ``"fields"`` with every field's messages. Domain code raises ``ApiError`` subclasses
(see ``documents/exceptions.py``); DRF's own exceptions are translated here.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from bokehsite.errors import ApiError, PayloadTooLarge


def error_body(code: str, detail: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, "field": field, **extra}


def _first_message(messages: Any) -> str:
    while isinstance(messages, (list, dict)) and messages:
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return str(messages)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        return Response(error_body(exc.code, exc.detail, exc.field, **exc.extra), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge("request body is larger than the configured limit", field="body")
        return Response(error_body(exc.code, exc.detail, exc.field), status=exc.status_code)
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = exc.detail
        field = next(iter(fields), None)
        field = None if field == "non_field_errors" else field
        message = _first_message(fields)
        detail = f"{field}: {message}" if field else message
        return Response(error_body("invalid", detail, field, fields=fields), status=exc.status_code)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, Http404):
        code = "not_found"
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
    else:
        code = "error"
    response.data = error_body(code, _first_message(response.data))
    return response
