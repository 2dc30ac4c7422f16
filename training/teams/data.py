"""What data each project may read: its file roots and S3 prefixes — the installation's defaults
(`RAILYARD_DATA_ROOTS`, `RAILYARD_S3_PREFIXES`) unless an operator gave it its own — and the Secret its
trainers take credentials from on Kubernetes. Submit, "Read columns" and the trainer all hold to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training.conf import railyard
from training.models import Project


@dataclass(frozen=True)
class DataAccess:
    roots: list[Path]
    #: Where a relative `file` path starts.
    base: Path
    #: None of them: any bucket.
    s3_prefixes: list[str]
    #: The Secrets whose keys become a trainer's environment on Kubernetes.
    secrets: list[str]


def of(project: Project | None) -> DataAccess:
    """A project's data access (a project yet to be created has the defaults)."""
    own_roots = bool(project and project.data_roots)
    roots = [Path(root) for root in project.data_roots] if own_roots else railyard.data_roots
    return DataAccess(
        roots=roots,
        base=roots[0] if own_roots else railyard.data_dir,
        s3_prefixes=list(project.s3_prefixes) if project and project.s3_prefixes else railyard.s3_prefixes,
        secrets=[project.credentials_secret]
        if project and project.credentials_secret
        else railyard.k8s_env_from_secrets,
    )


def named(name: object) -> DataAccess:
    """The data access of the project a request names."""
    return of(Project.objects.filter(name=name).first() if isinstance(name, str) else None)
