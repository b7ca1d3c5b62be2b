"""Site-wide views: error pages (the JSON envelope under /api/, HTML elsewhere), /healthz,
/metrics and the staff's health page."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from bokehsite import errors, health, metrics, operators


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


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the channel layer answer; 503 naming what failed. No login."""
    checks = await health.run_checks()
    failed = [name for name, outcome in checks.items() if outcome != "ok"]
    if not failed:
        return JsonResponse({"status": "ok", "checks": checks})
    detail = "; ".join(f"{name}: {checks[name]}" for name in failed)
    return JsonResponse(errors.body("unhealthy", detail, None, checks=checks), status=503)


@never_cache
@require_safe
@login_required
def operator_health(request: HttpRequest) -> HttpResponse:
    """Versions, processes, connections, database, channel layer, Chromium and disk. Staff only."""
    if not request.user.is_staff:
        raise PermissionDenied("only staff may see the server's health")
    context = {**admin.site.each_context(request), "title": "Server health", "report": operators.report()}
    return render(request, "operators/health.html", context)


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """This process's figures in Prometheus's text format, for the scraper ``bokehsite.metrics`` lets in."""
    try:
        metrics.check(request)
    except errors.ApiError as error:
        response = errors.json_response(error)
        if isinstance(error, errors.Unauthorized):
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    await metrics.refresh()
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
