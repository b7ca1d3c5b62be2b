import json

from rest_framework import renderers

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
