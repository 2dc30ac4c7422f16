"""A training request checked against what this Railyard has: its compute profiles, and the workflows
(of its trainer image), data roots and S3 prefixes of the request's project.

The rules of the request are the trainer's (`railyard_trainer.schema`: one schema for the service and
the trainer); this module adds only what needs Django and the settings. `validate(payload)` returns
the cleaned request or raises `InvalidRequest`, whose `errors` map a dotted path
(`data.features[0].path`) to its messages. The API, the launch form and retries all use it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from railyard_trainer.paths import PathNotAllowed, allowed_file, allowed_s3
from railyard_trainer.schema import Catalogue, check
from training import images
from training.conf import railyard
from training.models import Project
from training.teams import data
from training.teams.data import DataAccess


def data_file(raw: str, access: DataAccess) -> Path:
    """The real path of a `file` source; PathNotAllowed when it lies outside the project's data roots."""
    return allowed_file(raw, access.roots, access.base)


def file_problem(raw: str, access: DataAccess) -> str | None:
    """Why a `file` source's path cannot be used, or None."""
    try:
        if not data_file(raw, access).is_file():
            return f"No file at {raw!r} under the data roots."
    except PathNotAllowed as exc:
        return str(exc)
    return None


def s3_problem(raw: str, access: DataAccess) -> str | None:
    try:
        allowed_s3(raw, access.s3_prefixes)
    except PathNotAllowed as exc:
        return str(exc)
    return None


def catalogue(project: Project | None) -> Catalogue:
    """What a request in `project` may use: its image's workflows, its data (a new project: the defaults)."""
    access = data.of(project)
    return Catalogue(
        workflows=dict(images.available(images.image_of(project)).values_list("name", "parameters")),
        compute_resources=list(railyard.compute_resources),
        default_compute_resource=railyard.default_compute_resource,
        file_problem=partial(file_problem, access=access),
        s3_problem=partial(s3_problem, access=access),
    )


def validate(payload: Any) -> dict:
    """The cleaned request, with defaults filled in, its data within its project's reach;
    InvalidRequest listing every bad field."""
    name = payload.get("project") if isinstance(payload, dict) else None
    return check(payload, catalogue(Project.objects.filter(name=name).first() if isinstance(name, str) else None))
