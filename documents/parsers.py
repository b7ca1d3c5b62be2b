"""Request body parsers: the binary bundle and plain JSON, both under the configured size limit."""

from __future__ import annotations

from typing import Any

from bokeh.core.serialization import Buffer
from django.conf import settings
from rest_framework import parsers

from bokehsite import wire
from bokehsite.errors import PayloadTooLarge
from documents.exceptions import MalformedBody


class ParsedBody(dict):
    """A parsed body: its JSON members, plus the binary buffers a bundle carried."""

    def __init__(self, members: dict[str, Any], buffers: list[Buffer]):
        super().__init__(members)
        self.buffers = buffers


def read_limited(stream, parser_context: dict[str, Any] | None, limit: int | None = None) -> bytes:
    """The body, refused (413) when over ``limit`` bytes (default ``BOKEHSITE_MAX_BODY_BYTES``)."""
    limit = settings.BOKEHSITE_MAX_BODY_BYTES if limit is None else limit
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    too_large = PayloadTooLarge(f"request body is larger than the limit of {limit} bytes", field="body")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise too_large
    return data


class BundleParser(parsers.BaseParser):
    media_type = wire.CONTENT_TYPE

    def parse(self, stream, media_type=None, parser_context=None) -> ParsedBody:
        try:
            header, buffers = wire.unpack(read_limited(stream, parser_context))
        except wire.BundleError as e:
            raise MalformedBody(f"malformed bundle: {e}", field="body", code="malformed_bundle") from None
        return ParsedBody(header, buffers)


class JSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> ParsedBody:
        try:
            data = wire.loads(read_limited(stream, parser_context))
        except wire.JSONError as e:
            raise MalformedBody(f"malformed JSON: {e}", field="body", code="malformed_json") from None
        if not isinstance(data, dict):
            raise MalformedBody("the body must be a JSON object", field="body", code="malformed_json")
        return ParsedBody(data, [])


class ZipParser(parsers.BaseParser):
    """An account zip, as bytes under the size limit (``documents.archive`` reads it)."""

    media_type = "application/zip"

    def parse(self, stream, media_type=None, parser_context=None) -> ParsedBody:
        return ParsedBody({"archive": read_limited(stream, parser_context)}, [])
