"""Sync the workflow catalogue from the trainer installed beside the web app."""

from __future__ import annotations

import json
import subprocess

from django.core.management.base import BaseCommand, CommandError

from training.conf import railyard
from training.models import Workflow


def installed_workflows() -> tuple[list[dict], list[str]]:
    """The trainer's catalogue, and its warnings (entry points it skipped because they do not load)."""
    command = [*railyard.trainer_command, "workflows"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise CommandError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout), [line for line in result.stderr.splitlines() if line.strip()]


def sync(catalogue: list[dict]) -> tuple[int, int]:
    """Upsert the catalogue; workflows no longer installed stay (runs refer to them) but are unavailable."""
    names = set()
    for entry in catalogue:
        Workflow.objects.update_or_create(
            name=entry["name"],
            defaults={
                "task": entry["task"],
                "description": entry["description"],
                "default_params": entry["default_params"],
                "parameters": entry.get("parameters"),
                "is_available": True,
            },
        )
        names.add(entry["name"])
    retired = Workflow.objects.exclude(name__in=names).filter(is_available=True).update(is_available=False)
    return len(names), retired


class Command(BaseCommand):
    help = "Sync the workflow catalogue from the installed trainer (railyard.workflows entry points)."

    def handle(self, *args: object, **options: object) -> None:
        catalogue, warnings = installed_workflows()
        for warning in warnings:
            self.stderr.write(warning)
        synced, retired = sync(catalogue)
        self.stdout.write(f"{synced} workflow(s) available, {retired} retired.")
