"""Errors the datasets domain raises; ``bokehsite.errors`` gives them their envelope."""

from bokehsite import errors
from bokehsite.errors import ApiError


class DatasetNotFound(errors.NotFound):
    """Also answers for other people's datasets, so that their names do not leak."""


class UploadNotFound(errors.NotFound):
    """No such upload in progress (finished, cancelled, or someone else's)."""


class InvalidColumns(ApiError):
    """A column's name, dtype or length is not one the server stores."""

    code = "invalid_columns"


class InvalidDtype(InvalidColumns):
    code = "invalid_dtype"


class UnequalLengths(InvalidColumns):
    code = "unequal_lengths"


class NameTaken(errors.Conflict):
    code = "name_taken"


class TooLarge(errors.PayloadTooLarge):
    """Over ``BOKEHSITE_DATASET_MAX_BYTES`` or the chunk size."""


class QuotaExceeded(errors.QuotaExceeded):
    """Over ``BOKEHSITE_DATASET_QUOTA_BYTES``."""


class BadChunk(ApiError):
    """A chunk at an offset that is not a chunk's, or of the wrong length."""

    code = "bad_chunk"


class ChecksumMismatch(ApiError):
    """The chunk's bytes do not have the SHA-256 it came with: it was corrupted on the way."""

    code = "checksum_mismatch"


class UploadIncomplete(errors.Conflict):
    code = "upload_incomplete"


class XNotSorted(ApiError):
    code = "x_not_sorted"
