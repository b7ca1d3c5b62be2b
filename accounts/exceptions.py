"""Errors the accounts domain raises; ``bokehsite.errors`` gives them their envelope."""

from bokehsite.errors import Conflict, Forbidden, NotFound, Unauthorized


class RegistrationClosed(Forbidden):
    code = "registration_closed"


class UsernameTaken(Conflict):
    code = "username_taken"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class InvalidToken(Unauthorized):
    """An API token that is unknown, revoked or expired."""

    code = "invalid_token"


class TokenNotFound(NotFound):
    pass
