"""Sync a trainer image's workflow catalogue: the installation's own trainer, or a team's `--image`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from training import images


class Command(BaseCommand):
    help = (
        "Discover the workflows of a trainer image (railyard.workflows entry points) by running it where runs "
        "run — a Kubernetes Job, or the local virtualenv RAILYARD_LOCAL_IMAGES names — and store them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--image", default=images.DEFAULT, help="a team's image (default: RAILYARD_TRAINER_IMAGE)")

    def handle(self, *args: object, image: str = images.DEFAULT, **options: object) -> None:
        try:
            synced, retired, warnings = images.register(image)
        except images.DiscoveryFailed as exc:
            raise CommandError(str(exc)) from None
        for warning in warnings:
            self.stderr.write(warning)
        self.stdout.write(f"{images.reference(image)}: {synced} workflow(s) available, {retired} retired.")
