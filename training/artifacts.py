"""A run's artifacts: recorded as the worker finds them in the store, and read back from it."""

from __future__ import annotations

import json
import logging
from typing import Any, BinaryIO

from railyard_trainer.storage import ArtifactNotFound, StoreError, open_store, sha256_hex
from training.models import Artifact, Run

log = logging.getLogger(__name__)


def entry(run: Run, name: str, data: bytes, content_type: str) -> dict:
    """A manifest entry for bytes of the run's current attempt (its URI, size and sha256)."""
    return {
        "name": name,
        "uri": f"{run.artifact_uri}/{name}",
        "size": len(data),
        "sha256": sha256_hex(data),
        "content_type": content_type,
    }


def record(run: Run, entry: dict) -> None:
    """The run's current attempt has this artifact (a manifest entry), once."""
    Artifact.objects.update_or_create(
        run=run,
        attempt=run.attempt,
        name=entry["name"],
        defaults={k: entry[k] for k in ("uri", "size", "sha256", "content_type")},
    )


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
