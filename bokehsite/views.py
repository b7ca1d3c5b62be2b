"""Site-wide error pages: the JSON envelope under /api/, HTML elsewhere."""

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from bokehsite import errors


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return errors.json_response(errors.NotFound(f"no API endpoint at {request.path}"))
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return errors.json_response(errors.ServerFault())
    return defaults.server_error(request)
