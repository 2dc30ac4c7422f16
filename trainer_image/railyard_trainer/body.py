"""JSON from clients, before any field's rules: parsed, and refused when no field could hold it.

`InvalidRequest` maps a dotted path (`data.features[0].path`) to its messages: a `400` naming each
field. `parse_body` and `loads` read a request body or a form field's JSON; `check_json` refuses what
no stored text may hold (NUL, lone surrogate escapes) and nesting past `MAX_DEPTH`. The request's own
schema (`railyard_trainer.schema`), models, schedules and webhooks all answer with it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

#: How deep a request's JSON may nest (custom_params included); deeper is refused, not parsed.
MAX_DEPTH = 64


class InvalidRequest(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors

    @property
    def words(self) -> str:
        """Its messages alone, for a page that shows them beside the field they name."""
        return " ".join(text for texts in self.errors.values() for text in texts)


def parse_body(body: bytes) -> Any:
    """The JSON document of a request body, or InvalidRequest naming what is wrong with it."""
    if not body.strip():
        raise InvalidRequest({"body": ["The body is empty; send the training request as JSON."]})
    return loads(body, "body")


def loads(raw: str | bytes, where: str) -> Any:
    """JSON from a client: InvalidRequest (naming `where`) when it is not JSON or is nested past MAX_DEPTH."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest({where: [f"Not valid JSON: {exc}."]}) from None
    except RecursionError:
        raise InvalidRequest({where: [f"JSON may be nested at most {MAX_DEPTH} levels deep."]}) from None
    check_json(value, where)
    return value


def check_json(value: Any, where: str = "body") -> None:
    """InvalidRequest for what no field may hold: a NUL character anywhere, nesting past MAX_DEPTH."""
    errors: dict[str, list[str]] = {}
    # Iterative, so that a document nested thousands deep cannot exhaust the stack here.
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            errors.setdefault(path, []).append(f"JSON may be nested at most {MAX_DEPTH} levels deep.")
            continue
        if isinstance(item, str) and (problem := _text_problem(item)):
            errors.setdefault(path, []).append(f"Must not contain {problem}.")
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = key_path(path, key)
                if problem := _text_problem(key):
                    errors.setdefault(child_path, []).append(f"Field names must not contain {problem}.")
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
    if errors:
        raise InvalidRequest(errors)


def fields(payload: Any, allowed: Collection[str], required: Collection[str] = ()) -> dict:
    """`payload` as a JSON object of only `allowed` keys with every `required` one given (not null or
    empty); InvalidRequest naming each unknown and each missing field at once."""
    check_json(payload)
    if not isinstance(payload, dict):
        raise InvalidRequest({"body": ["Must be a JSON object."]})
    errors = {key: ["Unknown field."] for key in sorted(set(payload) - set(allowed))}
    errors.update({key: ["This field is required."] for key in required if payload.get(key) in (None, "")})
    if errors:
        raise InvalidRequest(errors)
    return payload


def _text_problem(text: str) -> str | None:
    """What no stored text may hold: NUL (PostgreSQL refuses it), or a lone surrogate escape such as
    \\ud800 (valid JSON, but not Unicode text that can be stored)."""
    if "\x00" in text:
        return "NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogate escapes (\\ud800 to \\udfff)"
    return None


def key_path(path: str, key: str) -> str:
    """The dotted path of a field, printable in an error answer whatever the field's name holds."""
    key = key.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")
    return key if path == "body" else f"{path}.{key}"
