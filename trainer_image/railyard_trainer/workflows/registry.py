"""Workflows are registered through the `railyard.workflows` entry-point group.

An entry point that cannot be loaded (its package fails to import, or it names no Workflow
subclass) is skipped with a warning on stderr naming it: the other workflows stay usable, and only
a run of that workflow fails, with the import error in words.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

from railyard_trainer.errors import BadDataError
from railyard_trainer.workflows.base import Workflow

GROUP = "railyard.workflows"


def _load_all() -> tuple[dict[str, type[Workflow]], dict[str, str]]:
    """The workflows that load, by name, and why each of the others does not."""
    found: dict[str, type[Workflow]] = {}
    broken: dict[str, str] = {}
    for entry in entry_points(group=GROUP):
        try:
            cls = entry.load()
        except Exception as exc:  # noqa: BLE001 - whatever a package does on import, the others stay usable
            broken[entry.name] = f"{entry.value} cannot be imported: {type(exc).__name__}: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Workflow)):
            broken[entry.name] = f"{entry.value} is not a Workflow subclass"
            continue
        found[entry.name] = cls
    for name, problem in sorted(broken.items()):
        print(f"warning: workflow {name!r} skipped: {problem}", file=sys.stderr, flush=True)
    return found, broken


def get_workflow(name: str) -> type[Workflow]:
    workflows, broken = _load_all()
    if name in broken:
        raise BadDataError(f"workflow {name!r} is installed but unusable: {broken[name]}")
    if name not in workflows:
        known = ", ".join(sorted(workflows)) or "none"
        raise BadDataError(f"unknown workflow {name!r} (installed: {known})")
    return workflows[name]


def catalogue() -> list[dict]:
    """Every workflow that loads, described; the others are skipped with a warning."""
    workflows, _ = _load_all()
    return [dict(cls.describe(), name=name) for name, cls in sorted(workflows.items())]
