"""DRF's exception handler: every API error answers with the envelope of ``bokehsite.errors``.

Validation errors add ``"fields"`` with every field's messages.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from bokehsite import errors


def _first_message(messages: Any) -> str:
    while isinstance(messages, (list, dict)) and messages:
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return str(messages)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = errors.PayloadTooLarge("request body is larger than the configured limit", field="body")
    exc = errors.from_exception(exc) or exc
    if isinstance(exc, errors.ApiError):
        return Response(errors.envelope(exc), status=exc.status_code)
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = exc.detail
        field = next(iter(fields), None)
        field = None if field == "non_field_errors" else field
        message = _first_message(fields)
        detail = f"{field}: {message}" if field else message
        return Response(errors.body("invalid", detail, field, fields=fields), status=exc.status_code)

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
    response.data = errors.body(code, _first_message(response.data))
    return response
