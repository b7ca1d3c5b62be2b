"""Errors the documents domain raises; ``bokehsite.errors`` gives them their envelope."""

from rest_framework import status

from bokehsite import errors
from bokehsite.errors import ApiError


class MalformedBody(ApiError):
    code = "malformed_body"


class InvalidDocument(ApiError):
    """The body parsed, but Bokeh cannot load it as a document."""

    code = "invalid_document"


class UnknownModelType(InvalidDocument):
    code = "unknown_model_type"


class InvalidPatch(ApiError):
    """Bokeh cannot apply the change to the current document."""

    code = "invalid_patch"


class TitleTaken(errors.Conflict):
    code = "title_taken"


class DocumentNotFound(errors.NotFound):
    """Also answers for documents the caller may not see, so that their existence does not leak."""


class UserNotFound(errors.NotFound):
    code = "user_not_found"


class UnknownGroup(ApiError):
    """A group named in a request's body that does not exist."""

    code = "unknown_group"


class GroupShareNotFound(errors.NotFound):
    code = "group_share_not_found"


class Forbidden(errors.Forbidden):
    """The caller can see the document (so it may say so) but may not do this to it."""


class InvalidFrameToken(errors.Unauthorized):
    """A frame token that is malformed, forged, expired, or for another document."""

    code = "invalid_frame_token"


class VersionConflict(errors.Conflict):
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


class StorageQuotaExceeded(errors.QuotaExceeded):
    """Over the account's storage quota for documents (``BOKEHSITE_STORAGE_QUOTA``, or the admin's)."""


class InvalidEmbedToken(errors.Unauthorized):
    """An embed token that is unknown, revoked or expired."""

    code = "invalid_embed_token"


class EmbedOriginRefused(errors.Forbidden):
    """A page of an origin its embed token does not list."""

    code = "origin_not_allowed"

# --- exports -----------------------------------------------------------------------------------


class ExportUnavailable(ApiError):
    """This server cannot draw images: no Chromium (or no Playwright to drive it)."""

    status_code = status.HTTP_501_NOT_IMPLEMENTED
    code = "export_unavailable"


class ExportFailed(ApiError):
    """The document did not draw in headless Chromium (its code failed, or it took too long)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "export_failed"


class InvalidArchive(ApiError):
    """An account zip that is not one, or holds what it may not (paths outside it, bad JSON)."""

    code = "invalid_archive"

    def __init__(self, detail: str):
        super().__init__(detail, field="archive")
