"""Errors the accounts domain raises; ``bokehsite.error_handler`` turns them into JSON answers."""

from rest_framework import status

from bokehsite.errors import ApiError


class RegistrationClosed(ApiError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "registration_closed"


class UsernameTaken(ApiError):
    status_code = status.HTTP_409_CONFLICT
    code = "username_taken"


class InvalidCredentials(ApiError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "invalid_credentials"


class TokenNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
