from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"

    def ready(self) -> None:
        from documents import signals
        from streaming import broadcast

        signals.changes_committed.connect(broadcast.changes_committed, dispatch_uid="streaming.broadcast")
