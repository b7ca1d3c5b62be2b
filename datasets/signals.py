"""What the datasets domain announces once committed."""

from django.dispatch import Signal

# Rows were appended to a dataset: ``dataset``, ``old_length``, ``new_length`` (sender: Dataset).
rows_appended = Signal()
