"""ASGI entry point: HTTP through Django, websockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bokehsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)
from django.conf import settings  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from appserver import routing as app_routing, supervisor  # noqa: E402
from streaming.auth import WebsocketAuthStack  # noqa: E402
from streaming.routing import websocket_urlpatterns  # noqa: E402


def _close_connections(**kwargs) -> None:
    connections.close_all()


# Each HTTP request runs in a thread of its own, which ends with it: a connection kept open
# (DATABASE_CONN_MAX_AGE) would never be used again, yet stay open until a garbage collection.
request_finished.connect(_close_connections, sender=ASGIHandler, dispatch_uid="bokehsite.asgi.close_connections")

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # No blanket origin check: streaming.auth grants cookie identities to our own origins only.
        "websocket": WebsocketAuthStack(URLRouter(websocket_urlpatterns + app_routing.websocket_urlpatterns)),
    }
)

# What starting made (modules, classes, functions: some 450,000 objects with Django, Bokeh and
# numba) lives as long as the process. Frozen, full garbage collections skip it, and each costs
# a few milliseconds instead of over 100 (the pauses that made up the slowest requests).
get_resolver().url_patterns  # the views and what they import, loaded now rather than on first use
if settings.BOKEHSITE_SERVER_URL:
    supervisor.ensure_started(settings.BOKEHSITE_SERVER_URL)  # the app hosts, when the server runs apps
gc.freeze()
