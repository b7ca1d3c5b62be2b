from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"

    def ready(self) -> None:
        from accounts.signals import access_changed
        from datasets.signals import dataset_removed, rows_appended
        from documents.signals import changes_committed
        from streaming import broadcast

        changes_committed.connect(broadcast.changes_committed, dispatch_uid="streaming.broadcast")
        access_changed.connect(broadcast.access_changed, dispatch_uid="streaming.access")
        rows_appended.connect(broadcast.rows_appended, dispatch_uid="streaming.appended")
        dataset_removed.connect(broadcast.dataset_removed, dispatch_uid="streaming.removed")
