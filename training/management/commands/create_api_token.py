from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from training.models import ApiToken


class Command(BaseCommand):
    help = "Issue a new API token for USERNAME and print it, and nothing else (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for, shown in the admin")

    def handle(self, *args: object, username: str, name: str = "", **options: object) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        _, key = ApiToken.issue(user, name=name[:100])
        self.stdout.write(key)
