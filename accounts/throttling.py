"""Brute-force limits for logging in and registering, shared by the API and the HTML forms.

Both go through DRF's cache-based rate throttle with the same scope and key (the client's
address), so one budget covers both ways in. The address is DRF's ``get_ident``: the socket's
peer, or behind ``BOKEHSITE_TRUSTED_PROXIES`` proxies (DRF's ``NUM_PROXIES``) the address the
outermost trusted proxy appended to X-Forwarded-For; what a client writes there itself never
counts. Rates come from ``BOKEHSITE_THROTTLE_RATES`` at call time, so tests and settings
overrides take effect at once.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


class AuthRateThrottle(ScopedRateThrottle):
    """DRF throttle for views that set ``throttle_scope`` ("login" or "register")."""

    def get_rate(self):
        return settings.BOKEHSITE_THROTTLE_RATES.get(self.scope)


class _FormThrottle(SimpleRateThrottle):
    cache_format = ScopedRateThrottle.cache_format  # the same cache keys as the API's

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__()

    def get_rate(self):
        return settings.BOKEHSITE_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def form_wait(request: HttpRequest, scope: str) -> float | None:
    """Count one attempt of an HTML form; ``None`` if allowed, else the seconds to wait."""
    throttle = _FormThrottle(scope)
    if throttle.allow_request(request, None):
        return None
    return throttle.wait() or 1.0
