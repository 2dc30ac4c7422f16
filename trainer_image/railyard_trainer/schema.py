"""The training request's one schema: its shape, each field's rules, and the defaults it fills in.

`check(payload, catalogue)` is what the service asks of a request (the API, the launch form, a retry);
`check_spec(raw)` is what the trainer asks of the resolved spec it is given. Both apply the same rules
to `data` and `train`, so a request Railyard accepts is a spec the trainer accepts. Errors map a
dotted path (`data.features[0].path`) to its messages (`body.InvalidRequest`, as for any JSON). What
only the service knows — which workflows are installed, which compute profiles exist, which files lie
under the data roots — comes in as a `Catalogue`; without one those fields are checked for their
shape only. Imports no pandas and no Django.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from railyard_trainer import parameters
from railyard_trainer.body import InvalidRequest, check_json
from railyard_trainer.vocabulary import (
    COMPARISONS,
    COMPOSE_METHODS,
    DATE_RANGE,
    DEFAULT_DECISION_THRESHOLD,
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_MAX_SEGMENTS,
    DEFAULT_MIN_SEGMENT_ROWS,
    DEFAULT_SEGMENT_MARGIN,
    FILE,
    FORMATS,
    LIST_PREDICATES,
    MOST_FILTERS,
    MOST_MEMBERS,
    MOST_NAMES,
    MOST_SEGMENT_JOBS,
    MOST_SEGMENTS,
    MOST_SOURCES,
    PREDICATES,
    RANDOM,
    S3,
    SAMPLING_FUNCTIONS,
    SOURCES,
    VALUELESS_PREDICATES,
)

TOP_LEVEL = {"user", "project", "model_description", "compute_resource", "data", "train", "compose", "retry"}
#: What the service adds to a request to make the trainer's spec.
SPEC_ONLY = {"run_id", "seed", "challenge", "segment"}
DATA_KEYS = {"features", "date_range", "filters", "holdout_sampling", "id_column"}
SOURCE_KEYS = {"names", "source", "format", "path", "date_column", "join_on", "version_id"}
FILTER_KEYS = {"feature_name", "predicate", "feature_value"}
HOLDOUT_KEYS = {"sampling_function", "date_range", "fraction", "seed", "stratify"}
TRAIN_KEYS = {
    "workflow_name",
    "classifier_features",
    "label",
    "custom_params",
    "positive_class",
    "decision_threshold",
    "segment_by",
}
COMPOSE_KEYS = {"members", "method", "weights"}
SEGMENT_BY_KEYS = {"column", "min_rows", "include_generic", "max_segments", "jobs", "min_improvement"}
RETRY_KEYS = {"on_oom"}
S3_PATH = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/|$)")


@dataclass(frozen=True)
class Catalogue:
    """What the service knows and the request is checked against."""

    #: The installed workflows, each with its declared parameters (None: it declares none).
    workflows: Mapping[str, dict[str, Any] | None]
    compute_resources: Collection[str]
    default_compute_resource: str
    #: Why a `file` source's path cannot be read (outside the data roots, no such file), or None.
    file_problem: Callable[[str], str | None]
    #: Why an `s3` source's path may not be read (outside the project's buckets), or None.
    s3_problem: Callable[[str], str | None] | None = None


class _Checker:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def obj(self, value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.add(path or "body", "Must be a JSON object.")
            return {}
        for key in sorted(set(value) - allowed):
            self.add(_join(path, key), "Unknown field.")
        for key in required:
            if value.get(key) in (None, "", []):
                self.add(_join(path, key), "This field is required.")
        return value

    def string(self, value: Any, path: str, max_length: int = 255) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(path, "Must be a non-empty string.")
            return None
        if len(value) > max_length:
            self.add(path, f"Must be at most {max_length} characters.")
            return None
        return value

    def names(self, value: Any, path: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(path, "Must be a list of column names.")
            return []
        if len(value) > MOST_NAMES:
            self.add(path, f"Name at most {MOST_NAMES} columns (there are {len(value)}).")
            return []
        if len(set(value)) != len(value):
            self.add(path, "Names must not repeat.")
        return value

    def date_range(self, value: Any, path: str) -> tuple[date, date] | None:
        if value is None:
            return None
        value = self.obj(value, path, {"start", "end"}, ("start", "end"))
        bounds = []
        for key in ("start", "end"):
            raw = value.get(key)
            if raw is None:
                continue
            try:
                bounds.append(date.fromisoformat(raw))
            except (TypeError, ValueError):
                self.add(f"{path}.{key}", f"{raw!r} is not a date (YYYY-MM-DD).")
        if len(bounds) != 2:
            return None
        if bounds[0] >= bounds[1]:
            self.add(f"{path}.start", f"The start {bounds[0]} must be before the end {bounds[1]}.")
            return None
        return bounds[0], bounds[1]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and value is not None


def check(payload: Any, catalogue: Catalogue) -> dict:
    """The cleaned request, with defaults filled in; InvalidRequest listing every bad field."""
    check_json(payload)
    c = _Checker()
    request = c.obj(payload, "", TOP_LEVEL, ("project", "data"))
    if not isinstance(payload, dict):
        raise InvalidRequest(c.errors)
    composing = "compose" in request
    if composing and "train" in request:
        c.add("compose", "Send either train (to train a model) or compose (to combine trained runs), not both.")
    elif not composing and request.get("train") in (None, "", []):
        c.add("train", "This field is required (or compose, to combine trained runs).")

    c.string(request.get("user"), "user", 150)
    project = request.get("project")
    if project is not None and (not isinstance(project, str) or not is_slug(project)):
        c.add("project", "Use letters, digits, '-' and '_' only (at most 100 characters).")
    if not isinstance(request.get("model_description", ""), str):
        c.add("model_description", "Must be a string.")
    compute = request.get("compute_resource", catalogue.default_compute_resource)
    if not isinstance(compute, str) or compute not in catalogue.compute_resources:
        known = ", ".join(catalogue.compute_resources)
        c.add("compute_resource", f"Unknown compute resource {compute!r}; choose one of {known}.")
    data, train = _check_training(c, request, catalogue)
    compose = _check_compose(c, request["compose"]) if composing else None
    retry = c.obj(request.get("retry"), "retry", RETRY_KEYS) if "retry" in request else {}
    if not isinstance(retry.get("on_oom", True), bool):
        c.add("retry.on_oom", "Must be true or false.")

    if c.errors:
        raise InvalidRequest(c.errors)
    return {
        "user": request.get("user"),
        "project": project,
        "model_description": request.get("model_description", ""),
        "compute_resource": compute,
        "data": data,
        **({"compose": compose} if composing else {"train": train}),
        "retry": {"on_oom": retry.get("on_oom", True)},
    }


def check_spec(raw: Any) -> dict:
    """The trainer's side: a resolved spec's `data` and `train` by the request's rules, defaults filled
    in, plus its `run_id` and `seed`; InvalidRequest listing every bad field."""
    check_json(raw)
    c = _Checker()
    spec = c.obj(raw, "", TOP_LEVEL | SPEC_ONLY, ("data", "train"))
    if not isinstance(raw, dict):
        raise InvalidRequest(c.errors)
    data, train = _check_training(c, spec, None)
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        c.add("seed", "Must be an integer.")
    if c.errors:
        raise InvalidRequest(c.errors)
    return {"run_id": str(spec.get("run_id", "local")), "seed": seed, "data": data, "train": train}


def _check_training(c: _Checker, request: dict, catalogue: Catalogue | None) -> tuple[dict, dict]:
    """`data` and `train`, checked and with their defaults."""
    data = c.obj(request.get("data"), "data", DATA_KEYS, ("features",)) if "data" in request else {}
    columns, date_columns = _check_sources(c, data.get("features"), catalogue)
    date_range = c.date_range(data.get("date_range"), "data.date_range")
    if data.get("date_range") is not None and not date_columns:
        c.add("data.date_range", "A date range needs a feature source with a 'date_column'.")
    _check_filters(c, data.get("filters"), columns)
    id_column = c.string(data.get("id_column"), "data.id_column")
    if id_column and columns and id_column not in columns:
        c.add("data.id_column", f"{id_column!r} is not among the feature sources' names.")
    holdout = _check_holdout(c, data.get("holdout_sampling"), date_range, date_columns, columns)
    train = (
        c.obj(request.get("train"), "train", TRAIN_KEYS, ("workflow_name", "classifier_features", "label"))
        if "train" in request
        else {}
    )
    _check_train(c, train, columns, catalogue.workflows if catalogue else None)
    clean_train = {**train, "custom_params": train.get("custom_params") or {}}
    if "segment_by" in train:
        clean_train["segment_by"] = _check_segment_by(c, train["segment_by"], columns, train.get("label"))
    return {**data, "holdout_sampling": holdout, "filters": data.get("filters") or []}, clean_train


def is_slug(value: str) -> bool:
    return 0 < len(value) <= 100 and all(ch.isalnum() or ch in "-_" for ch in value) and value.isascii()


def _check_sources(c: _Checker, features: Any, catalogue: Catalogue | None) -> tuple[set[str], list[str]]:
    columns: set[str] = set()
    date_columns: list[str] = []
    if features is None:
        return columns, date_columns
    if not isinstance(features, list) or not features:
        c.add("data.features", "Must be a non-empty list of feature sources.")
        return columns, date_columns
    if len(features) > MOST_SOURCES:
        c.add("data.features", f"Name at most {MOST_SOURCES} feature sources (there are {len(features)}).")
        return columns, date_columns
    for i, raw in enumerate(features):
        path = f"data.features[{i}]"
        source = c.obj(raw, path, SOURCE_KEYS, ("names", "source", "format", "path"))
        names = c.names(source.get("names"), f"{path}.names")
        if source.get("source") is not None and source["source"] not in SOURCES:
            c.add(f"{path}.source", f"Unknown source {source['source']!r}; choose one of {', '.join(SOURCES)}.")
        if source.get("format") is not None and source["format"] not in FORMATS:
            c.add(f"{path}.format", f"Unknown format {source['format']!r}; choose one of {', '.join(FORMATS)}.")
        location = c.string(source.get("path"), f"{path}.path", 2048)
        file_problem = catalogue.file_problem if catalogue else None
        s3_problem = catalogue.s3_problem if catalogue else None
        if location and file_problem and source.get("source") == FILE and (problem := file_problem(location)):
            c.add(f"{path}.path", problem)
        if location and source.get("source") == S3 and not S3_PATH.match(location):
            c.add(f"{path}.path", "An s3 source's path is s3://bucket/key, or s3://bucket/prefix/ for many files.")
        elif location and s3_problem and source.get("source") == S3 and (problem := s3_problem(location)):
            c.add(f"{path}.path", problem)
        if "version_id" in source:
            version = c.string(source.get("version_id"), f"{path}.version_id", 1024)
            if version and (source.get("source") != S3 or not location or location.endswith("/")):
                c.add(f"{path}.version_id", "A version pins one S3 object: give an s3 source the object's key.")
        date_column = source.get("date_column")
        if date_column is not None:
            if date_column not in names:
                c.add(f"{path}.date_column", f"{date_column!r} is not among this source's names.")
            else:
                date_columns.append(date_column)
        join_on = c.names(source.get("join_on"), f"{path}.join_on")
        if i > 0 and not join_on:
            c.add(f"{path}.join_on", "Sources after the first need the key to join them on.")
        for key in join_on:
            if key not in names:
                c.add(f"{path}.join_on", f"{key!r} is not among this source's names.")
            elif key not in columns:
                c.add(f"{path}.join_on", f"{key!r} is not among the names of the sources before it.")
        columns |= set(names)
    return columns, date_columns


def _check_filters(c: _Checker, filters: Any, columns: set[str]) -> None:
    if filters is None:
        return
    if not isinstance(filters, list):
        c.add("data.filters", "Must be a list of filters.")
        return
    if len(filters) > MOST_FILTERS:
        c.add("data.filters", f"Give at most {MOST_FILTERS} filters (there are {len(filters)}).")
        return
    for i, raw in enumerate(filters):
        path = f"data.filters[{i}]"
        flt = c.obj(raw, path, FILTER_KEYS, ("feature_name", "predicate"))
        name, predicate, value = flt.get("feature_name"), flt.get("predicate"), flt.get("feature_value")
        if name is not None and not isinstance(name, str):
            c.add(f"{path}.feature_name", "Must be a column name.")
        elif name is not None and name not in columns:
            c.add(f"{path}.feature_name", f"{name!r} is not among the feature sources' names.")
        if predicate is None:
            continue
        if predicate not in PREDICATES:
            c.add(f"{path}.predicate", f"Unknown predicate {predicate!r}; choose one of {', '.join(PREDICATES)}.")
        elif predicate in LIST_PREDICATES:
            if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
                c.add(f"{path}.feature_value", f"{predicate} needs a non-empty list of values.")
        elif predicate in VALUELESS_PREDICATES:
            if value is not None:
                c.add(f"{path}.feature_value", f"{predicate} takes no value.")
        elif predicate in COMPARISONS:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                c.add(f"{path}.feature_value", f"{predicate} needs a number or a date string.")
        elif not _scalar(value):
            c.add(f"{path}.feature_value", f"{predicate} needs a single value (string, number or boolean).")


def _check_holdout(
    c: _Checker,
    raw: Any,
    date_range: tuple[date, date] | None,
    date_columns: list[str],
    columns: set[str],
) -> dict:
    path = "data.holdout_sampling"
    if raw is None:
        return {"sampling_function": RANDOM, "fraction": DEFAULT_HOLDOUT_FRACTION, "seed": 0, "stratify": False}
    holdout = c.obj(raw, path, HOLDOUT_KEYS, ("sampling_function",))
    function = holdout.get("sampling_function")
    if function is not None and function not in SAMPLING_FUNCTIONS:
        c.add(
            f"{path}.sampling_function",
            f"Unknown sampling function {function!r}; choose one of {', '.join(SAMPLING_FUNCTIONS)}.",
        )
    if function == DATE_RANGE:
        if holdout.get("date_range") is None:
            c.add(f"{path}.date_range", "DATE_RANGE needs the holdout's date_range.")
        elif not date_columns:
            c.add(f"{path}.date_range", "DATE_RANGE needs a feature source with a 'date_column'.")
        held = c.date_range(holdout.get("date_range"), f"{path}.date_range")
        if held and date_range is None and holdout.get("date_range") is not None:
            c.add(f"{path}.date_range", "DATE_RANGE needs data.date_range so that training rows precede it.")
        elif held and date_range and not (date_range[0] < held[0] and held[1] <= date_range[1]):
            c.add(
                f"{path}.date_range",
                f"The holdout {held[0]}–{held[1]} must lie inside the date range {date_range[0]}–{date_range[1]} "
                "and start after it begins.",
            )
        return holdout
    if function == RANDOM:
        fraction = holdout.get("fraction", DEFAULT_HOLDOUT_FRACTION)
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
            c.add(f"{path}.fraction", "Must be a number between 0 and 1 (exclusive).")
        seed = holdout.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            c.add(f"{path}.seed", "Must be an integer.")
        stratify = holdout.get("stratify", False)
        if isinstance(stratify, str):
            if stratify not in columns:
                c.add(f"{path}.stratify", f"{stratify!r} is not among the feature sources' names.")
        elif not isinstance(stratify, bool):
            c.add(f"{path}.stratify", "Must be true (stratify by the label), false or a column name.")
        return {"sampling_function": RANDOM, "fraction": fraction, "seed": seed, "stratify": stratify}
    return holdout


def _check_train(
    c: _Checker, train: dict, columns: set[str], workflows: Mapping[str, dict[str, Any] | None] | None
) -> None:
    name = train.get("workflow_name")
    if name is not None and not isinstance(name, str):
        c.add("train.workflow_name", "Must be a workflow's name.")
    elif name is not None and workflows is not None and name not in workflows:
        known = ", ".join(sorted(workflows)) or "none (run manage.py sync_workflows)"
        c.add("train.workflow_name", f"Unknown workflow {name!r}; choose one of {known}.")
    label = c.string(train.get("label"), "train.label")
    if label and columns and label not in columns:
        c.add("train.label", f"{label!r} is not among the feature sources' names.")
    features = train.get("classifier_features")
    if features is not None:
        features = c.names(features, "train.classifier_features")
        unknown = [f for f in features if columns and f not in columns]
        if unknown:
            c.add("train.classifier_features", f"{', '.join(map(repr, unknown))} not among the feature sources' names.")
        if label and label in features:
            c.add("train.classifier_features", f"The label {label!r} cannot also be a feature.")
    positive = train.get("positive_class")
    if "positive_class" in train and (positive is None or not _scalar(positive)):
        c.add("train.positive_class", "Must be one of the label's values (a string, number or boolean).")
    threshold = train.get("decision_threshold", DEFAULT_DECISION_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
        c.add("train.decision_threshold", "Must be a number between 0 and 1 (exclusive).")
    params = train.get("custom_params")
    if params is not None and not isinstance(params, dict):
        c.add("train.custom_params", "Must be a JSON object (it is passed to the workflow as is).")
    elif workflows is not None and isinstance(name, str) and name in workflows:
        for path, problem in parameters.problems(name, workflows[name], params).items():
            c.add(path, problem)


def _count(c: _Checker, value: Any, path: str, default: int | None, most: int) -> int | None:
    """A whole number from 1 to `most`, or the default when absent."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        c.add(path, f"Must be a whole number from 1 to {most}.")
        return default
    return value


def _check_segment_by(c: _Checker, raw: Any, columns: set[str], label: str | None) -> dict:
    """`train.segment_by` with its defaults (`jobs` stays None until the service picks the profile's)."""
    path = "train.segment_by"
    value = c.obj(raw, path, SEGMENT_BY_KEYS, ("column",))
    column = c.string(value.get("column"), f"{path}.column")
    if column and columns and column not in columns:
        c.add(f"{path}.column", f"{column!r} is not among the feature sources' names.")
    elif column and column == label:
        c.add(f"{path}.column", f"The label {label!r} cannot also be the segment column.")
    include_generic = value.get("include_generic", True)
    if not isinstance(include_generic, bool):
        c.add(f"{path}.include_generic", "Must be true or false.")
    margin = value.get("min_improvement", DEFAULT_SEGMENT_MARGIN)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin < 1:
        c.add(f"{path}.min_improvement", "Must be a number from 0 up to 1.")
    return {
        "column": column,
        "min_rows": _count(c, value.get("min_rows"), f"{path}.min_rows", DEFAULT_MIN_SEGMENT_ROWS, 10**9),
        "include_generic": include_generic,
        "max_segments": _count(
            c, value.get("max_segments"), f"{path}.max_segments", DEFAULT_MAX_SEGMENTS, MOST_SEGMENTS
        ),
        "jobs": _count(c, value.get("jobs"), f"{path}.jobs", None, MOST_SEGMENT_JOBS),
        "min_improvement": margin,
    }


def _check_compose(c: _Checker, raw: Any) -> dict:
    """`compose`: the runs to combine (their ids), how, and a weighted mean's weights. Whether the runs
    exist, share a label and task and kept out of the holdout is the service's to check."""
    value = c.obj(raw, "compose", COMPOSE_KEYS, ("members", "method"))
    members, method, weights = value.get("members"), value.get("method"), value.get("weights")
    if method is not None and method not in COMPOSE_METHODS:
        c.add("compose.method", f"Unknown method {method!r}; choose one of {', '.join(COMPOSE_METHODS)}.")
    if members is not None:
        ids = members if isinstance(members, list) else None
        if ids is None or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in ids):
            c.add("compose.members", "Must be a list of run ids.")
            members = None
        elif len(set(ids)) != len(ids):
            c.add("compose.members", "A run may be a member once.")
        elif method == "routed" and len(ids) != 1:
            c.add("compose.members", "routed takes one member: a segmented request, whose routing it follows.")
        elif method in COMPOSE_METHODS and method != "routed" and not 2 <= len(ids) <= MOST_MEMBERS:
            c.add("compose.members", f"Name from 2 to {MOST_MEMBERS} runs.")
    if method == "weighted":
        numbers = isinstance(weights, list) and all(
            isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights
        )
        if not numbers or not sum(weights) > 0:
            c.add("compose.weights", "A weighted mean needs a list of non-negative numbers, not all zero.")
        elif isinstance(members, list) and len(weights) != len(members):
            c.add("compose.weights", f"Give one weight per member ({len(members)}), not {len(weights)}.")
    elif weights is not None:
        c.add("compose.weights", "Only the weighted method takes weights.")
    return {"members": members, "method": method, "weights": weights if method == "weighted" else None}
