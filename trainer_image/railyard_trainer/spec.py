"""The resolved training spec the trainer is given (the request, with paths and defaults resolved).

Its rules are the request's (`railyard_trainer.schema`); this only turns a checked spec into values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from railyard_trainer import promotion, schema
from railyard_trainer.body import InvalidRequest
from railyard_trainer.errors import BadDataError
from railyard_trainer.vocabulary import DEFAULT_DECISION_THRESHOLD, DEFAULT_HOLDOUT_FRACTION


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date

    @classmethod
    def parse(cls, raw: dict | None) -> DateRange | None:
        """The range of a checked spec's {"start", "end"}."""
        return None if raw is None else cls(date.fromisoformat(raw["start"]), date.fromisoformat(raw["end"]))


@dataclass(frozen=True)
class FeatureSource:
    names: list[str]
    source: str
    format: str
    path: str
    date_column: str | None = None
    join_on: list[str] = field(default_factory=list)
    #: An S3 object's version to read (a pin), whatever the key holds now.
    version_id: str | None = None


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
    #: The column whose values identify a record (`row_id` of the holdout scores); None: row positions.
    id_column: str | None = None
    #: The positive class of a binary task; None: the larger of two numbers, True, or the second in order.
    positive_class: Any = None
    decision_threshold: float = DEFAULT_DECISION_THRESHOLD
    #: For a model's retrain: its champion to compare with (`railyard_trainer.comparison`); else None.
    challenge: dict | None = None
    #: A segmented request's `train.segment_by` (column, min_rows, include_generic, max_segments, jobs).
    segment_by: dict | None = None
    #: A segment's run: the value of the segment column whose rows it trains on (None: every row).
    segment: Any = None

    @property
    def date_column(self) -> str | None:
        return next((s.date_column for s in self.sources if s.date_column), None)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainSpec:
        """The spec's values; BadDataError naming every field that breaks the request's rules."""
        try:
            clean = schema.check_spec(raw)
            challenge = promotion.check_challenge(raw.get("challenge"))
        except InvalidRequest as exc:
            raise BadDataError(f"the spec is malformed: {exc}") from None
        data, train = clean["data"], clean["train"]
        held = data["holdout_sampling"]
        return cls(
            run_id=clean["run_id"],
            workflow_name=train["workflow_name"],
            classifier_features=list(train["classifier_features"]),
            label=train["label"],
            custom_params=dict(train["custom_params"]),
            sources=[
                FeatureSource(
                    names=list(s["names"]),
                    source=s["source"],
                    format=s["format"],
                    path=s["path"],
                    date_column=s.get("date_column"),
                    join_on=_as_list(s.get("join_on")),
                    version_id=s.get("version_id"),
                )
                for s in data["features"]
            ],
            date_range=DateRange.parse(data.get("date_range")),
            filters=[Filter(**f) for f in data["filters"]],
            holdout=Holdout(
                sampling_function=held["sampling_function"],
                date_range=DateRange.parse(held.get("date_range")),
                fraction=float(held.get("fraction", DEFAULT_HOLDOUT_FRACTION)),
                seed=held.get("seed", clean["seed"]),
                stratify=held.get("stratify", False),
            ),
            seed=clean["seed"],
            id_column=data.get("id_column"),
            positive_class=train.get("positive_class"),
            decision_threshold=float(train.get("decision_threshold", DEFAULT_DECISION_THRESHOLD)),
            challenge=challenge,
            segment_by=train.get("segment_by"),
            segment=_segment(raw.get("segment"), train.get("segment_by")),
        )


def segment_spec(request_spec: dict, run_id: int | str, segment: Any = None) -> dict:
    """The spec of one run of a segmented request: the request's, with the run's id and segment value
    (none: the generic model, on every row)."""
    spec = {**request_spec, "run_id": str(run_id)}
    spec.pop("segment", None)
    spec.pop("challenge", None)  # a model's champion is the request's to meet, not each segment's
    if segment is not None:
        spec["segment"] = {"value": segment}
    return spec


def _segment(raw: Any, segment_by: dict | None) -> Any:
    """The segment value of a segment's spec: `{"value": v}` under a `train.segment_by`."""
    if raw is None:
        return None
    if segment_by is None or not isinstance(raw, dict) or set(raw) != {"value"}:
        raise BadDataError('the spec is malformed: segment: must be {"value": …} beside train.segment_by')
    return raw["value"]


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
