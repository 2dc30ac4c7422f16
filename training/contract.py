"""A training request checked against what this Railyard has: its workflows, compute profiles and data roots.

The rules of the request are the trainer's (`railyard_trainer.schema`: one schema for the service and
the trainer); this module adds only what needs Django and the settings. `validate(payload)` returns
the cleaned request or raises `InvalidRequest`, whose `errors` map a dotted path
(`data.features[0].path`) to its messages. The API, the launch form and retries all use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from railyard_trainer.paths import PathNotAllowed, allowed_file
from railyard_trainer.schema import Catalogue, check
from training.conf import railyard
from training.models import Workflow


def data_file(raw: str) -> Path:
    """The real path of a `file` source; PathNotAllowed when it lies outside the data roots."""
    return allowed_file(raw, railyard.data_roots, railyard.data_dir)


def file_problem(raw: str) -> str | None:
    """Why a `file` source's path cannot be used, or None."""
    try:
        if not data_file(raw).is_file():
            return f"No file at {raw!r} under the data roots."
    except PathNotAllowed as exc:
        return str(exc)
    return None


def catalogue() -> Catalogue:
    return Catalogue(
        workflows=dict(Workflow.objects.filter(is_available=True).values_list("name", "parameters")),
        compute_resources=list(railyard.compute_resources),
        default_compute_resource=railyard.default_compute_resource,
        file_problem=file_problem,
    )


def validate(payload: Any) -> dict:
    """The cleaned request, with defaults filled in; InvalidRequest listing every bad field."""
    return check(payload, catalogue())
