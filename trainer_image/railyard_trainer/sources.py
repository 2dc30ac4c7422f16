"""Where feature data comes from. A reader takes one feature source and returns its columns.

Readers are looked up by the request's `source`: `file` (a local path) and `s3` (an
`s3://bucket/key` object, or an `s3://bucket/prefix/` of many files, hive-partitioned or not).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow.parquet as pq

from railyard_trainer.errors import BadDataError
from railyard_trainer.paths import PathNotAllowed, allowed_file, allowed_s3, prefixes_from_env, roots_from_env
from railyard_trainer.spec import DateRange, FeatureSource
from railyard_trainer.stages import log


def _read_parquet(data: Path | BinaryIO, columns: list[str], where: str, label: str) -> pd.DataFrame:
    try:
        parquet = pq.ParquetFile(data)
    except (OSError, ValueError) as exc:
        raise BadDataError(f"{where}: cannot read parquet file {label}: {exc}") from exc
    _check_columns(parquet.schema_arrow.names, columns, where, label)
    return parquet.read(columns=columns).to_pandas()


def _read_csv(data: Path | BinaryIO, columns: list[str], where: str, label: str) -> pd.DataFrame:
    try:
        header = pd.read_csv(data, nrows=0).columns
        _check_columns(list(header), columns, where, label)
        if not isinstance(data, Path):
            data.seek(0)
        return pd.read_csv(data, usecols=columns)[columns]
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BadDataError(f"{where}: cannot read CSV file {label}: {exc}") from exc


def _check_columns(available: list[str], wanted: list[str], where: str, label: str) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise BadDataError(f"{where}: column(s) {', '.join(missing)} not found in {label}")


FORMATS: dict[str, Callable[[Path | BinaryIO, list[str], str, str], pd.DataFrame]] = {
    "parquet": _read_parquet,
    "csv": _read_csv,
}
EXTENSIONS = {"parquet": (".parquet", ".pq"), "csv": (".csv",)}


def read_file(source: FeatureSource, where: str, date_range: DateRange | None, read: dict) -> pd.DataFrame:
    try:
        path = allowed_file(source.path, roots_from_env())
    except PathNotAllowed as exc:
        raise PathNotAllowed(f"{where}: {exc}") from None
    if not path.is_file():
        raise BadDataError(f"{where}: file {path} does not exist")
    stat = path.stat()
    read.update(size=stat.st_size, modified=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat())
    return FORMATS[source.format](path, source.names, where, str(path))


def partitions(relative_key: str) -> dict[str, str]:
    """Hive-style `name=value` folders of an object key: `date=2026-01-01/part-0.parquet`."""
    return dict(part.split("=", 1) for part in relative_key.split("/")[:-1] if "=" in part)


def keep_partition(values: dict[str, str], date_column: str | None, date_range: DateRange | None) -> bool:
    """Prune a file whose partition on the date column lies outside the date range.

    Only a partition on the date column itself is pruned: then every row in it has that date.
    """
    if date_range is None or date_column is None or date_column not in values:
        return True
    try:
        day = date.fromisoformat(values[date_column][:10])
    except ValueError:
        return True
    return date_range.start <= day < date_range.end


def read_s3(source: FeatureSource, where: str, date_range: DateRange | None, read: dict) -> pd.DataFrame:
    from botocore.exceptions import BotoCoreError, ClientError

    from railyard_trainer.storage import describe_s3_error, s3_client, split_s3_uri

    try:
        allowed_s3(source.path, prefixes_from_env())
    except PathNotAllowed as exc:
        raise PathNotAllowed(f"{where}: {exc}") from None
    bucket, key = split_s3_uri(source.path)
    client = s3_client()
    # A pinned version is read, whatever the key holds now.
    version = {"VersionId": source.version_id} if source.version_id else {}
    try:
        if key and not key.endswith("/"):
            try:
                client.head_object(Bucket=bucket, Key=key, **version)
                keys, prefix = [key], key.rsplit("/", 1)[0] + "/" if "/" in key else ""
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                    raise
                keys, prefix = None, key + "/"  # not an object: perhaps a folder of them
        else:
            keys, prefix = None, key
        if keys is None:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            keys = sorted(
                obj["Key"]
                for page in pages
                for obj in page.get("Contents", [])
                if obj["Key"].endswith(EXTENSIONS[source.format])
                and not any(p.startswith(("_", ".")) for p in obj["Key"][len(prefix) :].split("/"))
            )
            if not keys:
                missing = "no such object" if key and not key.endswith("/") else f"no {source.format} files there"
                raise BadDataError(f"{where}: {source.path}: {missing}")
    except ClientError as exc:
        raise BadDataError(f"{where}: {describe_s3_error(exc, source.path)}") from exc
    except BotoCoreError as exc:
        raise BadDataError(f"{where}: {describe_s3_error(exc, source.path)}") from exc

    chosen = [k for k in keys if keep_partition(partitions(k[len(prefix) :]), source.date_column, date_range)]
    if len(chosen) < len(keys):
        log(f"{source.path}: reading {len(chosen)} of {len(keys)} files (the rest are outside the date range)")
    frames, objects = [], []
    for object_key in chosen:
        uri = f"s3://{bucket}/{object_key}"
        values = partitions(object_key[len(prefix) :])
        from_file = [c for c in source.names if c not in values]
        try:
            answer = client.get_object(Bucket=bucket, Key=object_key, **(version if object_key == key else {}))
            body = answer["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise BadDataError(f"{where}: {describe_s3_error(exc, uri)}") from exc
        objects.append((object_key, answer.get("ETag", "").strip('"'), answer.get("VersionId"), len(body)))
        frame = FORMATS[source.format](io.BytesIO(body), from_file, where, uri)
        for name in source.names:
            if name in values:
                frame[name] = values[name]
        frames.append(frame[source.names])
    read.update(s3_objects(objects))
    if not frames:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in source.names})
    return pd.concat(frames, ignore_index=True)


def s3_objects(objects: list[tuple[str, str, str | None, int]]) -> dict[str, Any]:
    """What was read of S3: the bytes, and the object's ETag and version id — or, for many objects,
    how many and one digest of all their keys and ETags (any object changed, added or gone changes it)."""
    if len(objects) == 1:
        _, etag, version_id, size = objects[0]
        return {
            "size": size,
            "etag": etag,
            **({"version_id": version_id} if version_id and version_id != "null" else {}),
        }
    listing = "\n".join(f"{key} {etag}" for key, etag, _, _ in objects)
    return {
        "size": sum(size for *_, size in objects),
        "objects": len(objects),
        "etag": hashlib.sha256(listing.encode()).hexdigest(),
    }


READERS: dict[str, Callable[[FeatureSource, str, DateRange | None, dict], pd.DataFrame]] = {
    "file": read_file,
    "s3": read_s3,
}


def read_source(
    source: FeatureSource, where: str, date_range: DateRange | None = None, read: dict | None = None
) -> pd.DataFrame:
    """The source's rows; `read` gets what was read — its size and its modification time (a file) or
    ETag and version id (S3) — so that a later run can tell whether the data changed."""
    reader = READERS.get(source.source)
    if reader is None:
        raise BadDataError(f"{where}: unknown source {source.source!r}")
    if source.format not in FORMATS:
        raise BadDataError(f"{where}: unknown format {source.format!r}")
    return reader(source, where, date_range, {} if read is None else read)


def _schema(data: Path | BinaryIO, fmt: str, label: str) -> list[tuple[str, str]]:
    try:
        if fmt == "parquet":
            return [(field.name, str(field.type)) for field in pq.read_schema(data)]
        sample = pd.read_csv(data, nrows=500)
        return [(str(name), str(dtype)) for name, dtype in sample.dtypes.items()]
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BadDataError(f"cannot read {fmt} file {label}: {exc}") from exc


def columns(
    source: str,
    fmt: str,
    path: str,
    roots: Sequence[Path] | None = None,
    base: Path | None = None,
    prefixes: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """The columns a source offers and their types, read from its (first) file without loading data.

    A file source is read only under `roots`, an s3 source only under `prefixes` (the trainer's own
    when not given).
    """
    if fmt not in FORMATS:
        raise BadDataError(f"unknown format {fmt!r}")
    if source == "file":
        real = allowed_file(path, roots_from_env() if roots is None else roots, base)
        if not real.is_file():
            raise BadDataError(f"file {real} does not exist")
        return _schema(real, fmt, path)
    if source != "s3":
        raise BadDataError(f"unknown source {source!r}")
    from botocore.exceptions import BotoCoreError, ClientError

    from railyard_trainer.storage import describe_s3_error, s3_client, split_s3_uri

    allowed_s3(path, prefixes_from_env() if prefixes is None else prefixes)
    bucket, key = split_s3_uri(path)
    client = s3_client()
    try:
        prefix = key if key.endswith("/") or not key else key + "/"
        listing = client.list_objects_v2(Bucket=bucket, Prefix=key if key.endswith(EXTENSIONS[fmt]) else prefix)
        keys = sorted(o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(EXTENSIONS[fmt]))
        if not keys:
            raise BadDataError(f"{path}: no {fmt} files there")
        body = client.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise BadDataError(describe_s3_error(exc, path)) from exc
    found = _schema(io.BytesIO(body), fmt, f"s3://{bucket}/{keys[0]}")
    from_partitions = [(name, "partition") for name in partitions(keys[0][len(prefix) :])]
    return from_partitions + found
