"""Assemble the modelling frame: read every source, join, restrict to the date range, filter."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from railyard_trainer.errors import BadDataError
from railyard_trainer.sources import read_source
from railyard_trainer.spec import DateRange, Filter, TrainSpec


def load(spec: TrainSpec, read: list[dict] | None = None) -> pd.DataFrame:
    """Read and join the feature sources; the first source is the base, others join onto it.

    `read` gets, per source, what was read: its path, size, modification time or S3 ETag and
    version, and how many rows, with a fingerprint of them.
    """
    frames = []
    for i, source in enumerate(spec.sources):
        seen: dict = {"path": source.path}
        frame = read_source(source, f"data.features[{i}]", spec.date_range, seen)
        seen.update(rows=len(frame), fingerprint=fingerprint(frame))
        if read is not None:
            read.append(seen)
        if source.date_column:
            frame[source.date_column] = _as_datetime(frame[source.date_column], source.date_column)
        frames.append(frame)
    joined = frames[0]
    for i, (source, frame) in enumerate(zip(spec.sources[1:], frames[1:], strict=True), start=1):
        if not source.join_on:
            raise BadDataError(f"data.features[{i}]: needs 'join_on' to be joined to the first source")
        overlap = (set(frame.columns) & set(joined.columns)) - set(source.join_on)
        frame = frame.drop(columns=sorted(overlap))
        try:
            joined = joined.merge(frame, how="left", on=source.join_on, validate="many_to_one")
        except pd.errors.MergeError as exc:
            raise BadDataError(f"data.features[{i}]: join key {source.join_on} is not unique in {source.path}") from exc
    return joined


def _as_datetime(series: pd.Series, name: str) -> pd.Series:
    try:
        parsed = pd.to_datetime(series)
    except (ValueError, TypeError) as exc:
        raise BadDataError(f"date column {name!r} cannot be read as dates: {exc}") from exc
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def in_range(dates: pd.Series, date_range: DateRange) -> pd.Series:
    """Half-open: start <= date < end."""
    return (dates >= pd.Timestamp(date_range.start)) & (dates < pd.Timestamp(date_range.end))


PREDICATES = {
    "Eq": lambda col, v: col == v,
    "NotEq": lambda col, v: col != v,
    "Gt": lambda col, v: col > v,
    "GtEq": lambda col, v: col >= v,
    "Lt": lambda col, v: col < v,
    "LtEq": lambda col, v: col <= v,
    "IsIn": lambda col, v: col.isin(v),
    "NotIn": lambda col, v: ~col.isin(v),
    "IsNull": lambda col, v: col.isna(),
    "NotNull": lambda col, v: col.notna(),
}


def apply_filter(frame: pd.DataFrame, flt: Filter, where: str) -> pd.Series:
    if flt.feature_name not in frame.columns:
        raise BadDataError(f"{where}: feature {flt.feature_name!r} is not among the loaded columns")
    if flt.predicate not in PREDICATES:
        raise BadDataError(f"{where}: unknown predicate {flt.predicate!r}")
    column = frame[flt.feature_name]
    value = flt.feature_value
    if pd.api.types.is_datetime64_any_dtype(column) and value is not None:
        value = [pd.Timestamp(v) for v in value] if isinstance(value, list) else pd.Timestamp(value)
    try:
        return PREDICATES[flt.predicate](column, value).fillna(False).astype(bool)
    except TypeError as exc:
        raise BadDataError(
            f"{where}: cannot compare {flt.feature_name!r} ({column.dtype}) with {value!r}: {exc}"
        ) from exc


def restrict(frame: pd.DataFrame, spec: TrainSpec) -> pd.DataFrame:
    """Rows inside the date range that pass every filter and have a label."""
    mask = pd.Series(True, index=frame.index)
    if spec.date_range is not None and spec.date_column is None:
        raise BadDataError("data.date_range needs a feature source with a date_column")
    if spec.date_range is not None:
        mask &= in_range(frame[spec.date_column], spec.date_range)
    for i, flt in enumerate(spec.filters):
        mask &= apply_filter(frame, flt, f"data.filters[{i}]")
    if mask.any() and frame.loc[mask, spec.label].isna().all():
        raise BadDataError(
            f"the label {spec.label!r} is empty (null) in all {int(mask.sum())} rows left after the date range "
            "and filters"
        )
    mask &= frame[spec.label].notna()
    kept = frame.loc[mask]
    if kept.empty:
        raise BadDataError(f"no rows left after applying the date range and filters ({len(frame)} rows loaded)")
    return kept.reset_index(drop=True)


def check_values(frame: pd.DataFrame, columns: list[str]) -> None:
    """BadDataError naming the first column whose values no model can learn from, and how many rows.

    - infinite numbers (a model would crash on them, or learn nonsense);
    - text among numbers: a column whose other values are numbers, so the text is a typo, not a category.
    """
    for name in columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            continue
        if pd.api.types.is_numeric_dtype(column):
            infinite = int(np.isinf(column.to_numpy(dtype=float, na_value=np.nan)).sum())
            if infinite:
                raise BadDataError(
                    f"column {name!r} holds infinite values in {infinite} of {len(frame)} rows; "
                    "fix them at the source or filter them out"
                )
        elif pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            present = column.dropna()
            # Each distinct value is tried as a number once: a million rows of a few categories cost
            # a few conversions, not a million.
            distinct = pd.Series(present.unique())
            numeric = pd.to_numeric(distinct, errors="coerce").notna()
            if numeric.all() or not numeric.any():
                continue
            is_text = present.isin(set(distinct[~numeric]))
            text = present[is_text]
            if len(present) - len(text) > len(text):
                raise BadDataError(
                    f"column {name!r} holds text in {len(text)} of {len(frame)} rows (first: {text.iloc[0]!r}) "
                    "where its other rows hold numbers; fix them at the source or filter them out"
                )


def fingerprint(frame: pd.DataFrame) -> str:
    """A sha256 over a frame's columns, types and values, to tell whether two runs used the same data."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(schema_fingerprint(frame).encode() + hashed.tobytes()).hexdigest()


def schema_fingerprint(frame: pd.DataFrame) -> str:
    schema = ",".join(f"{name}:{dtype}" for name, dtype in frame.dtypes.items())
    return hashlib.sha256(schema.encode()).hexdigest()[:16]
