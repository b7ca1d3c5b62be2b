"""The body of an upload chunk: raw bytes, at most a chunk."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import parsers

from documents.parsers import read_limited

OCTET_STREAM = "application/octet-stream"


class ChunkParser(parsers.BaseParser):
    media_type = OCTET_STREAM

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> bytes:
        if stream is None:  # an empty body
            return b""
        return read_limited(stream, parser_context, settings.BOKEHSITE_DATASET_CHUNK_BYTES)
