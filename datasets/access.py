"""Who may use a dataset: its owner, once it is uploaded (``Dataset.objects.usable_by``). Others
get 404, as for documents.

Views of a dataset through a document are allowed when the document's owner may use the dataset
and the viewer may view the document (``datasets.viewing``, with the same ``usable_by``).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError

from datasets.exceptions import DatasetNotFound, UploadNotFound
from datasets.models import Dataset, State


def _get(queryset, pk: uuid.UUID | str) -> Dataset | None:
    try:
        return queryset.get(pk=pk)
    except (Dataset.DoesNotExist, ValueError, ValidationError):
        return None


def resolve(user: Any, dataset_id: uuid.UUID | str) -> Dataset:
    """The dataset, if ``user`` may use it.

    Raises:
        DatasetNotFound: no such dataset, or not theirs.
    """
    dataset = _get(Dataset.objects.usable_by(user), dataset_id)
    if dataset is None:
        raise DatasetNotFound("no such dataset")
    return dataset


def resolve_upload(user: Any, upload_id: uuid.UUID | str) -> Dataset:
    """``user``'s upload in progress.

    Raises:
        UploadNotFound: no such upload, finished, cancelled, or not theirs.
    """
    upload = _get(Dataset.objects.uploads_of(user), upload_id)
    if upload is None or upload.state != State.UPLOADING:
        raise UploadNotFound("no such upload in progress")
    return upload
