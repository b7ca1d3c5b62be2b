"""Errors of hosted apps; ``bokehsite.errors`` gives them their envelope."""

from rest_framework import status

from bokehsite import errors
from bokehsite.errors import ApiError


class NoSuchApp(errors.NotFound):
    code = "no_such_app"


class NoSuchSession(errors.NotFound):
    code = "no_such_session"


class TooManySessions(ApiError):
    """Past ``BOKEHSITE_MAX_SESSIONS``: the page is refused for now, and says which limit."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "too_many_sessions"


class NoAppHost(ApiError):
    """No app host process runs this app now, or none answered in time."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "no_app_host"


class AppFailed(ApiError):
    """The app raised while it built the session's document; the traceback is in the log."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    code = "app_failed"
