from django.apps import AppConfig
from django.db.models.signals import post_delete


class DatasetsConfig(AppConfig):
    name = "datasets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from datasets import services
        from datasets.models import Dataset

        post_delete.connect(services.remove_files, sender=Dataset, dispatch_uid="datasets.remove_files")
