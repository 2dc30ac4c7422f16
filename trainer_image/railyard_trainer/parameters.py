"""A workflow's declared parameters: what each `custom_params` key accepts, and the words for a bad one.

A declaration maps each parameter's name to `{"default": …, "accepts": [kind, …]}`, where a value
passes when it matches any kind: `{"type": "integer" | "number" | "float" | "string" | "boolean" |
"array" | "object" | "null" | "any"}`, numbers optionally bounded by `"min"`/`"max"` (`"closed"`:
`"both"`, `"left"`, `"right"` or `"neither"`, as scikit-learn's intervals), and any kind optionally
limited to `"choices"`. A custom workflow may write the short form `{"type": "integer", "default":
100, "min": 1}`. Built-in workflows derive theirs from their estimator. A workflow that declares
nothing gets its `custom_params` untouched. Plain JSON values only: no pandas, no scikit-learn.
"""

from __future__ import annotations

import difflib
import json
import math
from typing import Any

TYPES = ("integer", "number", "float", "string", "boolean", "array", "object", "null", "any")
_KIND_KEYS = {"type", "min", "max", "closed", "choices"}


def normalize(declared: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The long form of a declaration (each parameter's `default` and `accepts` list); ValueError
    naming what is not a declaration."""
    out = {}
    for name, spec in declared.items():
        if not isinstance(spec, dict):
            raise ValueError(f"parameter {name!r}: the declaration must be an object")
        accepts = spec.get("accepts") or [{k: v for k, v in spec.items() if k in _KIND_KEYS}]
        for kind in accepts:
            if kind.get("type") not in TYPES:
                raise ValueError(f"parameter {name!r}: type {kind.get('type')!r} is not one of {', '.join(TYPES)}")
        out[name] = {"default": json_value(spec.get("default")), "accepts": accepts}
    return out


def json_value(value: Any) -> Any:
    """`value` as plain JSON (tuples as lists; infinities, NaN and objects as their text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def problems(workflow: str, parameters: dict[str, dict[str, Any]] | None, custom_params: Any) -> dict[str, str]:
    """What is wrong with each key of `custom_params`, by its dotted path; nothing for an undeclared workflow."""
    if parameters is None or not isinstance(custom_params, dict):
        return {}
    found = {}
    for key, value in custom_params.items():
        path = f"train.custom_params.{key}"
        if key not in parameters:
            by_lower = {name.lower(): name for name in parameters}
            close = difflib.get_close_matches(key.lower(), list(by_lower), n=1)
            hint = (
                f"; did you mean `{by_lower[close[0]]}`?" if close else f" (it takes {', '.join(sorted(parameters))})."
            )
            found[path] = f"`{key}` is not a parameter of {workflow}{hint}"
        elif not any(_matches(value, kind) for kind in parameters[key]["accepts"]):
            found[path] = f"`{key}` must be {describe(parameters[key]['accepts'])} (got {json.dumps(value)})."
    return found


def _matches(value: Any, kind: dict[str, Any]) -> bool:
    kind_type = kind["type"]
    if kind_type == "any":
        ok = True
    elif kind_type == "null":
        ok = value is None
    elif kind_type == "boolean":
        ok = isinstance(value, bool)
    elif kind_type == "string":
        ok = isinstance(value, str)
    elif kind_type == "array":
        ok = isinstance(value, list)
    elif kind_type == "object":
        ok = isinstance(value, dict)
    elif kind_type == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind_type == "float":
        ok = isinstance(value, float)
    else:  # number
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and "choices" in kind:
        ok = value in kind["choices"]
    if ok and kind_type in ("integer", "number", "float"):
        ok = _within(value, kind)
    return ok


def _within(value: float, kind: dict[str, Any]) -> bool:
    closed = kind.get("closed", "both")
    low, high = kind.get("min"), kind.get("max")
    if low is not None and (value < low or (value == low and closed not in ("left", "both"))):
        return False
    return not (high is not None and (value > high or (value == high and closed not in ("right", "both"))))


_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "float": "a decimal number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "any": "any value",
}


def describe(accepts: list[dict[str, Any]]) -> str:
    """In words: "an integer ≥ 1", "one of 'lbfgs', 'saga'", "a number > 0 or null"."""
    return " or ".join(_describe_kind(kind) for kind in accepts)


def _describe_kind(kind: dict[str, Any]) -> str:
    if "choices" in kind:
        return "one of " + ", ".join(json.dumps(c) for c in kind["choices"])
    words = _NAMES[kind["type"]]
    closed = kind.get("closed", "both")
    low, high = kind.get("min"), kind.get("max")
    if low is not None and high is not None:
        left, right = ("[" if closed in ("left", "both") else "("), ("]" if closed in ("right", "both") else ")")
        return f"{words} in {left}{low}, {high}{right}"
    if low is not None:
        return f"{words} {'≥' if closed in ('left', 'both') else '>'} {low}"
    if high is not None:
        return f"{words} {'≤' if closed in ('right', 'both') else '<'} {high}"
    return words
