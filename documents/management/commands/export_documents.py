"""manage.py export_documents USERNAME OUTPUT.zip [--history]: a user's documents as one zip."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from documents import services


class Command(BaseCommand):
    help = "Write every document a user owns (metadata, content, optionally history) to one zip file."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("output", help="the zip file to write")
        parser.add_argument("--history", action="store_true", help="also the snapshots and change log")

    def handle(self, username, output, history, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user called {username!r}") from None
        with open(output, "wb") as out:
            count = services.export_account(user, out, with_history=history)
        self.stderr.write(f"{count} document{'s' if count != 1 else ''} of {username} written to {output}")
