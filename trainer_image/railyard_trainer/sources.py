"""Where feature data comes from. A source reader takes one feature source and returns its columns.

Readers are looked up by the request's `source` (`file` today); a new backend (`s3`) only adds
an entry to READERS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from railyard_trainer.errors import BadDataError
from railyard_trainer.spec import FeatureSource


def _read_parquet(path: Path, columns: list[str], where: str) -> pd.DataFrame:
    try:
        available = pq.read_schema(path).names
    except (OSError, ValueError) as exc:
        raise BadDataError(f"{where}: cannot read parquet file {path}: {exc}") from exc
    _check_columns(available, columns, where, path)
    return pd.read_parquet(path, columns=columns)


def _read_csv(path: Path, columns: list[str], where: str) -> pd.DataFrame:
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BadDataError(f"{where}: cannot read CSV file {path}: {exc}") from exc
    _check_columns(list(header), columns, where, path)
    return pd.read_csv(path, usecols=columns)


def _check_columns(available: list[str], wanted: list[str], where: str, path: Path) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise BadDataError(f"{where}: column(s) {', '.join(missing)} not found in {path}")


FORMATS: dict[str, Callable[[Path, list[str], str], pd.DataFrame]] = {
    "parquet": _read_parquet,
    "csv": _read_csv,
}


def read_file(source: FeatureSource, where: str) -> pd.DataFrame:
    path = Path(source.path)
    if not path.exists():
        raise BadDataError(f"{where}: file {path} does not exist")
    return FORMATS[source.format](path, source.names, where)


READERS: dict[str, Callable[[FeatureSource, str], pd.DataFrame]] = {"file": read_file}


def read_source(source: FeatureSource, where: str) -> pd.DataFrame:
    reader = READERS.get(source.source)
    if reader is None:
        raise BadDataError(f"{where}: unknown source {source.source!r}")
    if source.format not in FORMATS:
        raise BadDataError(f"{where}: unknown format {source.format!r}")
    return reader(source, where)
