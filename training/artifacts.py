"""Reading a run's artifacts back from the store it was written to."""

from __future__ import annotations

import json
import logging
from typing import Any, BinaryIO

from railyard_trainer.storage import ArtifactNotFound, StoreError, open_store
from training.models import Artifact, Run

log = logging.getLogger(__name__)


def read_bytes(run: Run, name: str) -> bytes | None:
    if not run.artifact_uri:
        return None
    try:
        return open_store(run.artifact_uri).get(name)
    except ArtifactNotFound:
        return None
    except StoreError as exc:
        # A page shows what it can when the store is down; downloads report the failure.
        log.warning("run %s: %s", run.pk, exc)
        return None


def read_text(run: Run, name: str) -> str | None:
    data = read_bytes(run, name)
    return None if data is None else data.decode("utf-8", errors="replace")


def read_json(run: Run, name: str) -> Any:
    data = read_bytes(run, name)
    return None if data is None else json.loads(data)


def open_stream(artifact: Artifact) -> BinaryIO:
    """The artifact's content, from the folder of the attempt that wrote it."""
    return open_store(artifact.folder_uri).open(artifact.name)
