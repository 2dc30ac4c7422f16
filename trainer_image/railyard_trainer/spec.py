"""The resolved training spec the trainer is given (the request, with paths and defaults resolved)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from railyard_trainer.errors import BadDataError
from railyard_trainer.vocabulary import DEFAULT_HOLDOUT_FRACTION, RANDOM


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date

    @classmethod
    def parse(cls, raw: dict | None, where: str) -> DateRange | None:
        if raw is None:
            return None
        try:
            start, end = date.fromisoformat(raw["start"]), date.fromisoformat(raw["end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadDataError(f"{where}: needs ISO dates 'start' and 'end' ({exc})") from exc
        if start >= end:
            raise BadDataError(f"{where}: start {start} is not before end {end}")
        return cls(start, end)


@dataclass(frozen=True)
class FeatureSource:
    names: list[str]
    source: str
    format: str
    path: str
    date_column: str | None = None
    join_on: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Filter:
    feature_name: str
    predicate: str
    feature_value: Any = None


@dataclass(frozen=True)
class Holdout:
    sampling_function: str
    date_range: DateRange | None = None
    fraction: float = DEFAULT_HOLDOUT_FRACTION
    seed: int = 0
    stratify: bool | str = False


@dataclass(frozen=True)
class TrainSpec:
    run_id: str
    workflow_name: str
    classifier_features: list[str]
    label: str
    custom_params: dict
    sources: list[FeatureSource]
    date_range: DateRange | None
    filters: list[Filter]
    holdout: Holdout
    seed: int = 0

    @property
    def date_column(self) -> str | None:
        return next((s.date_column for s in self.sources if s.date_column), None)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainSpec:
        try:
            data, train = raw["data"], raw["train"]
            sources = [
                FeatureSource(
                    names=list(s["names"]),
                    source=s["source"],
                    format=s["format"],
                    path=s["path"],
                    date_column=s.get("date_column"),
                    join_on=_as_list(s.get("join_on")),
                )
                for s in data["features"]
            ]
            holdout_raw = data.get("holdout_sampling") or {"sampling_function": RANDOM}
            holdout = Holdout(
                sampling_function=holdout_raw["sampling_function"],
                date_range=DateRange.parse(holdout_raw.get("date_range"), "holdout_sampling.date_range"),
                fraction=float(holdout_raw.get("fraction", DEFAULT_HOLDOUT_FRACTION)),
                seed=int(holdout_raw.get("seed", raw.get("seed", 0))),
                stratify=holdout_raw.get("stratify", False),
            )
            return cls(
                run_id=str(raw.get("run_id", "local")),
                workflow_name=train["workflow_name"],
                classifier_features=list(train["classifier_features"]),
                label=train["label"],
                custom_params=dict(train.get("custom_params") or {}),
                sources=sources,
                date_range=DateRange.parse(data.get("date_range"), "data.date_range"),
                filters=[Filter(**f) for f in data.get("filters") or []],
                holdout=holdout,
                seed=int(raw.get("seed", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadDataError(f"the spec is malformed: {type(exc).__name__}: {exc}") from exc


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
