"""manage.py import_documents USERNAME ACCOUNT.zip [--on-conflict rename|skip|replace]."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from bokehsite.errors import ApiError
from documents import services


class Command(BaseCommand):
    help = ("Store the documents of a zip made by export_documents (or the API) as a user's, all or none; "
            "a zip exported with --history brings each document's history too.")

    def add_arguments(self, parser):
        parser.add_argument("username", help="who the documents will belong to")
        parser.add_argument("archive", help="the zip file")
        parser.add_argument("--on-conflict", choices=["rename", "skip", "replace"],
                            help="for a title the user already has: a new title, leave it out, or a new version")

    def handle(self, username, archive, on_conflict, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user called {username!r}") from None
        try:
            with open(archive, "rb") as f:
                data = f.read()
            results = services.import_account(user, data, on_conflict=on_conflict)
        except OSError as e:
            raise CommandError(f"cannot read {archive}: {e.strerror}") from None
        except ApiError as e:
            raise CommandError(f"nothing imported: {e.detail}") from None
        for result in results:
            self.stdout.write(f"{result['outcome']}: {result['title']}")
