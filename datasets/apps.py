from django.apps import AppConfig
from django.db.models.signals import post_delete


class DatasetsConfig(AppConfig):
    name = "datasets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from datasets import services, storage
        from datasets.models import Dataset

        storage.raise_open_files_limit()  # views of thousands of series map thousands of files
        post_delete.connect(services.remove_files, sender=Dataset, dispatch_uid="datasets.remove_files")
