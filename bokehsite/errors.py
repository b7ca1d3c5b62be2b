"""Errors the API answers with. ``bokehsite.error_handler`` turns them into JSON."""

from __future__ import annotations

from rest_framework import status


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


class PayloadTooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "too_large"
