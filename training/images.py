"""Trainer images and the workflows each holds.

- The installation's own trainer (`RAILYARD_TRAINER_IMAGE`) is image `""`; a project may name its own,
  built `FROM` it, and then its requests choose among that image's workflows, and its runs use it.
- A catalogue is discovered by running `python -m railyard_trainer workflows --json` in the image — as
  a Kubernetes Job on the cluster, or with the local executor in the virtualenv configured for it
  (`RAILYARD_LOCAL_IMAGES`) — and stored as `Workflow` rows of that image.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from training.conf import railyard
from training.executors import get_executor
from training.executors.base import ExecutorError
from training.models import Project, Workflow

#: `Workflow.image` of the installation's own trainer.
DEFAULT = ""


class DiscoveryFailed(Exception):
    """The image's catalogue could not be read; the message says why."""


def image_of(project: Project | None) -> str:
    """The image a project's runs use (a project yet to be made: the installation's)."""
    return project.trainer_image if project is not None else DEFAULT


def reference(image: str) -> str:
    """What an executor runs for `image`."""
    return image or railyard.trainer_image


def available(image: str) -> QuerySet[Workflow]:
    return Workflow.objects.filter(image=image, is_available=True)


def workflow(image: str, name: str) -> Workflow:
    return Workflow.objects.get(image=image, name=name)


def discover(image: str) -> tuple[list[dict], list[str]]:
    """The image's catalogue and its warnings, read by running it where runs run."""
    try:
        return get_executor(railyard.executor).workflows(reference(image))
    except ExecutorError as exc:
        raise DiscoveryFailed(f"cannot read the workflows of {reference(image)}: {exc}") from exc


def sync(image: str, catalogue: list[dict]) -> tuple[int, int]:
    """Store an image's catalogue; its workflows no longer there stay (runs refer to them), unavailable."""
    names = set()
    with transaction.atomic():
        for entry in catalogue:
            Workflow.objects.update_or_create(
                image=image,
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
        retired = available(image).exclude(name__in=names).update(is_available=False)
    return len(names), retired


def register(image: str) -> tuple[int, int, list[str]]:
    """Discover and store an image's catalogue: (available, retired, warnings)."""
    catalogue, warnings = discover(image)
    synced, retired = sync(image, catalogue)
    return synced, retired, warnings
