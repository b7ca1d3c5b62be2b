import json

from rest_framework import renderers
from rest_framework.exceptions import NotAcceptable

from bokehsite import wire


class BundleRenderer(renderers.BaseRenderer):
    """Sends a ready bundle as is. Errors met while answering still go out as the JSON envelope."""

    media_type = wire.CONTENT_TYPE
    format = "bundle"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, (bytes, bytearray, memoryview)):
            return data
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data).encode()


def require_bundle(request) -> None:
    """Refuse (406) a request for what is served only as a bundle that asked for something else."""
    if not isinstance(request.accepted_renderer, BundleRenderer):
        raise NotAcceptable(f"this is served only as {BundleRenderer.media_type}")


class ExportRenderer(renderers.BaseRenderer):
    """Exports answer with their own media type (HTML, JSON, PNG, SVG) whatever is asked; errors
    met on the way still go out as the JSON envelope."""

    media_type = "*/*"
    format = "export"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data).encode()
