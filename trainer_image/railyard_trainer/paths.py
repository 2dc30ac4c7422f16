"""Which data a source may name: local files only under the configured data roots, S3 objects only
under the configured prefixes (when any are).

The web app (validation, "Read columns") and the trainer both ask `allowed_file` and `allowed_s3`, so
a path that escapes — `..`, an absolute path elsewhere, a symlink pointing out, another bucket — is
refused in every entry point with the same words, which never say whether the data exists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from railyard_trainer.errors import BadDataError

#: The trainer's data roots, comma-separated, as the executors pass them.
ROOTS_ENV = "RAILYARD_DATA_ROOTS"
#: The trainer's S3 prefixes (`s3://bucket/` or `s3://bucket/folder/`), comma-separated; none: any bucket.
S3_PREFIXES_ENV = "RAILYARD_S3_PREFIXES"
#: Never readable, whatever the roots say: kernel and device files (secrets in /proc/self/environ).
FORBIDDEN = (Path("/proc"), Path("/sys"), Path("/dev"))


class PathNotAllowed(BadDataError):
    """A file source names a path outside the data roots."""


def parse_roots(raw: str) -> list[Path]:
    return [Path(part.strip()) for part in raw.split(",") if part.strip()]


def roots_from_env() -> list[Path]:
    return parse_roots(os.environ.get(ROOTS_ENV, ""))


def refusal(raw: str, roots: Sequence[Path]) -> str:
    where = ", ".join(str(root) for root in roots) or f"none are configured; set {ROOTS_ENV}"
    return f"{raw!r} is not a file Railyard may read: file sources must lie under a data root ({where})."


def allowed_file(raw: str, roots: Sequence[Path], base: Path | None = None) -> Path:
    """The real path of `raw` (symlinks followed) when it lies under a data root; PathNotAllowed otherwise.

    - A relative path is taken from `base` (the data directory), else from the first root.
    - Whether the file exists is the caller's question: this answers only where it may be.
    """
    start = base if base is not None else (roots[0] if roots else None)
    try:
        path = Path(raw)
        if not path.is_absolute():
            if start is None:
                raise PathNotAllowed(refusal(raw, roots))
            path = start / path
        real = Path(os.path.realpath(path))
    except (ValueError, OSError):  # a NUL byte, a symlink loop
        raise PathNotAllowed(refusal(raw, roots)) from None
    if any(real.is_relative_to(forbidden) for forbidden in FORBIDDEN):
        raise PathNotAllowed(refusal(raw, roots))
    for root in roots:
        if real.is_relative_to(os.path.realpath(root)):
            return real
    raise PathNotAllowed(refusal(raw, roots))


def prefixes_from_env() -> list[str]:
    return [part.strip() for part in os.environ.get(S3_PREFIXES_ENV, "").split(",") if part.strip()]


def allowed_s3(raw: str, prefixes: Sequence[str]) -> None:
    """PathNotAllowed unless `raw` (an object, or a folder of them) lies under one of `prefixes`; with
    no prefixes every bucket may be read."""
    if not prefixes:
        return
    parts = raw.removeprefix("s3://").split("/")
    if raw.startswith("s3://") and ".." not in parts and "." not in parts:
        folder = raw if raw.endswith("/") else raw + "/"
        for prefix in prefixes:
            if folder.startswith(prefix if prefix.endswith("/") else prefix + "/"):
                return
    where = ", ".join(prefixes)
    raise PathNotAllowed(f"{raw!r} is not S3 data Railyard may read: s3 sources must lie under {where}.")
