"""Errors the documents domain raises; ``bokehsite.errors`` turns them into JSON answers."""

from rest_framework import status

from bokehsite.errors import ApiError


class MalformedBody(ApiError):
    code = "malformed_body"


class InvalidDocument(ApiError):
    """The body parsed, but Bokeh cannot load it as a document."""

    code = "invalid_document"


class UnknownModelType(InvalidDocument):
    code = "unknown_model_type"


class TitleTaken(ApiError):
    status_code = status.HTTP_409_CONFLICT
    code = "title_taken"


class DocumentNotFound(ApiError):
    """Also answers for documents the caller may not see, so that their existence does not leak."""

    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class InvalidPatch(ApiError):
    """Bokeh cannot apply the change to the current document."""

    code = "invalid_patch"


class VersionConflict(ApiError):
    status_code = status.HTTP_409_CONFLICT
    code = "version_conflict"

    def __init__(self, base_version: int, current_version: int):
        super().__init__(
            f"the change was made against version {base_version}, but the document is at version {current_version}",
            field="base_version", current_version=current_version,
        )


class HistoryTruncated(ApiError):
    status_code = status.HTTP_410_GONE
    code = "history_truncated"

    def __init__(self, version: int):
        super().__init__(f"version {version} is no longer in the document's history", field="version")


class Forbidden(ApiError):
    """The caller can see the document (so it may say so) but may not do this to it."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class UserNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "user_not_found"


class InvalidFrameToken(ApiError):
    """A frame token that is malformed, forged, expired, or for another document."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "invalid_frame_token"
