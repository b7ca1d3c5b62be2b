"""Errors the accounts domain raises; ``bokehsite.errors`` gives them their envelope."""

from bokehsite.errors import Conflict, Forbidden, NotFound, Unauthorized


class RegistrationClosed(Forbidden):
    code = "registration_closed"


class LocalLoginDisabled(Forbidden):
    """Passwords are turned off (``BOKEHSITE_LOCAL_LOGIN=0``): people log in with single sign-on."""

    code = "local_login_disabled"


class CsrfFailed(Forbidden):
    """A browser's request that did not come from this site's own pages (Django's CSRF check)."""

    code = "csrf_failed"


class UsernameTaken(Conflict):
    code = "username_taken"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class InvalidToken(Unauthorized):
    """An API token that is unknown, revoked or expired."""

    code = "invalid_token"


class TokenNotFound(NotFound):
    pass
