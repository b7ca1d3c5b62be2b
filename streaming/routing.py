"""Websocket routes; the live document channel mounts here."""

websocket_urlpatterns: list = []
