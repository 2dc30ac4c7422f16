"""Prepare the demo: synthetic card-fraud data, a login, and one example run."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from training import demo, services
from training.conf import railyard

USERNAME, PASSWORD = "demo", "railyard-demo"


class Command(BaseCommand):
    help = "Write the demo dataset under the data directory, create the demo login and submit the demo run."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=200_000)
        parser.add_argument("--no-run", action="store_true", help="prepare data and login only")
        parser.add_argument(
            "--s3",
            metavar="URI",
            help="also upload the charges, partitioned by day, to "
            "s3://bucket/prefix and train from there (boto3's AWS_* settings apply)",
        )

    def handle(self, *args: object, rows: int, no_run: bool, s3: str | None = None, **options: object) -> None:
        call_command("sync_workflows", verbosity=0)
        # Under the data directory, the default data root, so that the demo's file sources may be read.
        directory = railyard.data_dir / "demo"
        paths = {"charges": directory / "charges.parquet", "merchants": directory / "merchants.parquet"}
        if not all(p.exists() for p in paths.values()):
            paths = demo.write_dataset(directory, n_rows=rows)
            self.stdout.write(f"Wrote {rows} synthetic charges to {paths['charges']}")
        # An ordinary account: a password printed on the console must not open the admin.
        user, created = get_user_model().objects.get_or_create(username=USERNAME)
        if created or user.is_staff or user.is_superuser:
            if created:
                user.set_password(PASSWORD)
            user.is_staff = user.is_superuser = False
            user.save()
        if not no_run:
            run, created = services.submit(
                user, demo.demo_request(paths["charges"], paths["merchants"]), idempotency_key="demo"
            )
            self.stdout.write(f"Demo run #{run.pk} is {run.status}{'' if created else ' (submitted earlier)'}.")
        if s3:
            files = demo.upload_partitioned(paths["charges"], s3)
            self.stdout.write(f"Uploaded {files} daily files to {s3.rstrip('/')}/charges/")
            if not no_run:
                run, _ = services.submit(user, demo.s3_demo_request(s3), idempotency_key=f"demo-s3-{s3}")
                self.stdout.write(f"S3 demo run #{run.pk} is {run.status}.")
        self.stdout.write(f"Log in at http://127.0.0.1:8000/ as {USERNAME} / {PASSWORD}")
