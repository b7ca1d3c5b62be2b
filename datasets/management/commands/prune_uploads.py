from django.core.management.base import BaseCommand

from datasets import services


class Command(BaseCommand):
    help = "Cancel dataset uploads that received nothing for BOKEHSITE_DATASET_UPLOAD_EXPIRY seconds, with their files."

    def handle(self, *args, **options) -> None:
        count = services.discard_idle_uploads()
        self.stdout.write(f"cancelled {count} idle upload(s)")
