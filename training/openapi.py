"""How the API describes itself: the training request's schema, built from the request's own
vocabulary, so that the two cannot drift apart. `railyard_trainer.schema` stays the judge; this only tells."""

from __future__ import annotations

from typing import Any

from railyard_trainer import body, vocabulary

DATE = {"type": "string", "format": "date", "example": "2026-01-01"}
DATE_RANGE = {
    "type": "object",
    "description": "Half-open: start <= date < end.",
    "properties": {"start": DATE, "end": DATE},
    "required": ["start", "end"],
    "additionalProperties": False,
}
NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": vocabulary.MOST_NAMES}
SCALAR = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}


def _object(properties: dict[str, Any], required: list[str], description: str = "") -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return {**schema, "description": description} if description else schema


def _count(default: int, most: int, description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": most, "default": default, "description": description}


def run_request_schema() -> dict[str, Any]:
    source = _object(
        {
            "names": NAMES,
            "source": {"type": "string", "enum": list(vocabulary.SOURCES)},
            "format": {"type": "string", "enum": list(vocabulary.FORMATS)},
            "path": {
                "type": "string",
                "maxLength": 2048,
                "description": "file: a path under the data roots (relative to the data directory); "
                "s3: s3://bucket/key or s3://bucket/prefix/.",
            },
            "date_column": {"type": "string"},
            "join_on": {"oneOf": [{"type": "string"}, NAMES]},
            "version_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1024,
                "description": "s3 with an object's key only: read this version of the object (a pin).",
            },
        },
        ["names", "source", "format", "path"],
    )
    filter_ = _object(
        {
            "feature_name": {"type": "string"},
            "predicate": {"type": "string", "enum": list(vocabulary.PREDICATES)},
            "feature_value": {
                "description": "A value for comparisons, a list for IsIn/NotIn, nothing for IsNull/NotNull.",
                "oneOf": [SCALAR, {"type": "array", "items": SCALAR, "minItems": 1}],
            },
        },
        ["feature_name", "predicate"],
    )
    holdout = _object(
        {
            "sampling_function": {"type": "string", "enum": list(vocabulary.SAMPLING_FUNCTIONS)},
            "date_range": DATE_RANGE,
            "fraction": {
                "type": "number",
                **{"minimum": 0, "exclusiveMinimum": True, "maximum": 1, "exclusiveMaximum": True},
                "default": vocabulary.DEFAULT_HOLDOUT_FRACTION,
            },
            "seed": {"type": "integer", "default": 0},
            "stratify": {"oneOf": [{"type": "boolean"}, {"type": "string"}], "default": False},
        },
        ["sampling_function"],
        "DATE_RANGE holds out the rows in date_range (training is what comes before it); RANDOM holds out a fraction.",
    )
    data = _object(
        {
            "features": {"type": "array", "items": source, "minItems": 1, "maxItems": vocabulary.MOST_SOURCES},
            "date_range": DATE_RANGE,
            "filters": {"type": "array", "items": filter_, "maxItems": vocabulary.MOST_FILTERS},
            "holdout_sampling": holdout,
            "id_column": {
                "type": "string",
                "nullable": True,
                "minLength": 1,
                "maxLength": 255,
                "description": "The column that identifies a record: the row_id of holdout_scores.parquet.",
            },
        },
        ["features"],
    )
    train = _object(
        {
            "workflow_name": {"type": "string", "description": "One of GET /api/v1/workflows."},
            "classifier_features": NAMES,
            "label": {"type": "string", "minLength": 1, "maxLength": 255},
            "custom_params": {
                "type": "object",
                "description": "The workflow's parameters. A workflow that declares them (every built-in one; "
                "see `parameters` in GET /api/v1/workflows) refuses another key or a value of another kind "
                f"with a 400 naming it; the others get them untouched (at most {body.MAX_DEPTH} levels deep).",
            },
            "positive_class": {
                **SCALAR,
                "description": "The positive class of a binary task (default: the larger of two numeric "
                "labels, true, or the second in sorted order).",
            },
            "decision_threshold": {
                "type": "number",
                **{"minimum": 0, "exclusiveMinimum": True, "maximum": 1, "exclusiveMaximum": True},
                "default": vocabulary.DEFAULT_DECISION_THRESHOLD,
                "description": "The score at or above which a binary model says positive.",
            },
            "segment_by": _object(
                {
                    "column": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The column whose values are segments.",
                    },
                    "min_rows": _count(vocabulary.DEFAULT_MIN_SEGMENT_ROWS, 10**9, "Training rows a value needs."),
                    "include_generic": {
                        "type": "boolean",
                        "default": True,
                        "description": "Train a model on all rows too.",
                    },
                    "max_segments": _count(
                        vocabulary.DEFAULT_MAX_SEGMENTS, vocabulary.MOST_SEGMENTS, "At most this many segment models."
                    ),
                    "jobs": _count(
                        vocabulary.DEFAULT_SEGMENT_JOBS,
                        vocabulary.MOST_SEGMENT_JOBS,
                        "Jobs the segment models are packed into (default: the compute profile's).",
                    ),
                    "min_improvement": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "exclusiveMaximum": True,
                        "default": vocabulary.DEFAULT_SEGMENT_MARGIN,
                        "description": "How far above zero the low end of a segment's interval must be for "
                        "its own model to serve it.",
                    },
                },
                ["column"],
                "A model per value of a column beside a generic model; the run becomes their parent.",
            ),
        },
        ["workflow_name", "classifier_features", "label"],
    )
    compose = _object(
        {
            "members": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "minItems": 1,
                "maxItems": vocabulary.MOST_MEMBERS,
                "uniqueItems": True,
                "description": "The runs to combine (routed: one segmented request).",
            },
            "method": {"type": "string", "enum": list(vocabulary.COMPOSE_METHODS)},
            "weights": {
                "type": "array",
                "items": {"type": "number", "minimum": 0},
                "description": "weighted only: one per member.",
            },
        },
        ["members", "method"],
        "In place of train: combine finished runs without training them.",
    )
    request = _object(
        {
            "user": {"type": "string", "nullable": True, "minLength": 1, "maxLength": 150},
            "project": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$"},
            "model_description": {"type": "string"},
            "compute_resource": {"type": "string", "description": "One of GET /api/v1/compute-resources."},
            "data": data,
            "train": train,
            "compose": compose,
            "retry": _object(
                {
                    "on_oom": {
                        "type": "boolean",
                        "default": True,
                        "description": "Retry once on the compute profile's next larger profile after running "
                        "out of memory.",
                    }
                },
                [],
            ),
        },
        ["project", "data"],
        "Railyard's training request: `train` a model, or `compose` trained runs (one of the two). "
        "Strings may not hold NUL characters.",
    )
    return {**request, "oneOf": [{"required": ["train"]}, {"required": ["compose"]}]}


#: What any route may answer when its caller asks too often (`training.throttles`).
THROTTLED = {
    "description": "Too many requests from this token (or address): wait Retry-After seconds.",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def add_throttled_answers(result: dict, generator: object, **kwargs: object) -> dict:
    """A drf-spectacular hook: every operation may answer 429."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).setdefault("429", THROTTLED)
    return result
