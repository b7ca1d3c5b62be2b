"""What the datasets domain announces once committed."""

from django.dispatch import Signal

# Rows were appended to a dataset: ``dataset``, ``old_length``, ``new_length`` (sender: Dataset).
rows_appended = Signal()
# A dataset was deleted: ``dataset_id`` (sender: Dataset).
dataset_removed = Signal()
