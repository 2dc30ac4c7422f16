"""Workflows are registered through the `railyard.workflows` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

from railyard_trainer.errors import BadDataError
from railyard_trainer.workflows.base import Workflow

GROUP = "railyard.workflows"


def _load_all() -> dict[str, type[Workflow]]:
    found: dict[str, type[Workflow]] = {}
    for entry in entry_points(group=GROUP):
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Workflow)):
            raise TypeError(f"entry point {entry.name!r} ({entry.value}) is not a Workflow subclass")
        found[entry.name] = cls
    return found


def get_workflow(name: str) -> type[Workflow]:
    workflows = _load_all()
    if name not in workflows:
        known = ", ".join(sorted(workflows)) or "none"
        raise BadDataError(f"unknown workflow {name!r} (installed: {known})")
    return workflows[name]


def catalogue() -> list[dict]:
    return [dict(cls.describe(), name=name) for name, cls in sorted(_load_all().items())]
