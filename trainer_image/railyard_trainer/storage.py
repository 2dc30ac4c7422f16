"""Artifact stores addressed by URI: every file is written whole and checksummed.

Kept free of heavy imports so that the web app can read artifacts through the same code.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class StoredArtifact:
    name: str
    uri: str
    size: int
    sha256: str
    content_type: str

    def to_dict(self) -> dict:
        return asdict(self)


class ArtifactNotFound(FileNotFoundError):
    pass


class ArtifactStore(Protocol):
    """A flat namespace of named files under one URI prefix (one run's artifacts)."""

    uri: str

    def put(self, name: str, data: bytes, content_type: str) -> StoredArtifact: ...

    def get(self, name: str) -> bytes: ...

    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> BinaryIO: ...

    def delete(self, name: str) -> None: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileStore:
    """A directory on a local or mounted filesystem (`file:///abs/path`)."""

    def __init__(self, root: Path):
        self.root = root
        self.uri = "file://" + str(root)

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid artifact name {name!r}")
        return self.root / name

    def put(self, name: str, data: bytes, content_type: str) -> StoredArtifact:
        path = self._path(name)
        self.root.mkdir(parents=True, exist_ok=True)
        # Write under a temporary name and rename, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredArtifact(name, f"{self.uri}/{name}", len(data), sha256_hex(data), content_type)

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"{self.uri}/{name}") from exc

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def open(self, name: str) -> BinaryIO:
        try:
            return self._path(name).open("rb")
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"{self.uri}/{name}") from exc

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def open_store(uri: str) -> ArtifactStore:
    """The store for a URI such as `file:///var/railyard/artifacts/runs/42`."""
    if uri.startswith("file://"):
        return FileStore(Path(uri.removeprefix("file://")).absolute())
    scheme = uri.split("://", 1)[0] if "://" in uri else "(none)"
    raise ValueError(f"unsupported artifact store scheme {scheme!r} in {uri!r}")
