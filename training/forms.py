"""The launch form: builds a training request from fields and validates it with `contract`.

Errors come back under the contract's dotted paths and are shown beside the field they concern.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.db.models import QuerySet

from railyard_trainer import body
from railyard_trainer import vocabulary as v
from training import contract
from training.conf import railyard
from training.models import Workflow

FORMATS = [(f, f) for f in v.FORMATS]
SAMPLING = [(v.DATE_RANGE, "Date range (holdout after training)"), (v.RANDOM, "Random fraction")]

#: Contract paths → form fields, first match wins.
FIELD_FOR_PATH = [
    (r"^data\.features\[0\]\.source$", "source_kind"),
    (r"^data\.features\[0\]\.(names)", "names"),
    (r"^data\.features\[0\]\.(path|source)", "source_path"),
    (r"^data\.features\[0\]\.format", "source_format"),
    (r"^data\.features\[0\]\.date_column", "date_column"),
    (r"^data\.features\[0\]\.version_id", "source_version_id"),
    (r"^data\.features(\[[1-9]\d*\])?", "extra_sources"),
    (r"^data\.date_range\.end", "date_end"),
    (r"^data\.date_range", "date_start"),
    (r"^data\.filters", "filters"),
    (r"^data\.holdout_sampling\.date_range\.end", "holdout_end"),
    (r"^data\.holdout_sampling\.date_range", "holdout_start"),
    (r"^data\.holdout_sampling\.(fraction|seed|sampling_function|stratify)", None),
    (r"^data\.holdout_sampling", "sampling_function"),
    (r"^train\.(workflow_name|label|classifier_features|custom_params)", None),
    (r"^(user|project|model_description|compute_resource)$", None),
    (r"^(retry|data\.id_column|train\.positive_class|train\.decision_threshold)", "more"),
]


def _split_names(value: str) -> list[str]:
    return [name.strip() for name in re.split(r"[,\n]", value) if name.strip()]


class LaunchForm(forms.Form):
    project = forms.CharField(max_length=100, initial="fraud")
    user = forms.CharField(required=False, max_length=150, help_text="Who the model is for; blank: you.")
    model_description = forms.CharField(required=False, max_length=2000)
    compute_resource = forms.ChoiceField()
    workflow_name = forms.ChoiceField(label="Workflow")

    source_kind = forms.ChoiceField(label="Source", choices=[("file", "File"), ("s3", "S3")], initial="file")
    source_path = forms.CharField(
        label="Data path",
        help_text="A file: absolute, or relative to the data directory. S3: s3://bucket/key or s3://bucket/prefix/.",
    )
    source_format = forms.ChoiceField(label="Format", choices=FORMATS)
    source_version_id = forms.CharField(
        required=False, max_length=1024, label="S3 version", help_text="Optional: pin this version of the S3 object."
    )
    names = forms.CharField(
        label="Columns to load", help_text="Comma-separated.", widget=forms.Textarea(attrs={"rows": 2})
    )
    date_column = forms.CharField(required=False)
    extra_sources = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional JSON list of more sources, each with a join_on key.",
    )

    date_start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_end = forms.DateField(
        required=False, label="Until (exclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    filters = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='JSON list, e.g. [{"feature_name": "amount", "predicate": "GtEq", "feature_value": 1}]',
    )

    sampling_function = forms.ChoiceField(label="Holdout", choices=SAMPLING)
    holdout_start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    holdout_end = forms.DateField(
        required=False, label="Holdout until (exclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    fraction = forms.FloatField(required=False, initial=v.DEFAULT_HOLDOUT_FRACTION, label="Holdout fraction")
    seed = forms.IntegerField(required=False, initial=0)
    stratify = forms.CharField(
        required=False,
        label="Stratify by",
        help_text="Random holdout only. Blank: no; true: by the label; or a column name.",
    )

    label = forms.CharField(max_length=255)
    classifier_features = forms.CharField(help_text="Comma-separated.", widget=forms.Textarea(attrs={"rows": 2}))
    custom_params = forms.CharField(
        required=False,
        initial="{}",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="JSON object passed to the workflow.",
    )
    more = forms.CharField(
        required=False,
        label="More of the request (JSON)",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='What the fields above do not show, merged into the request, e.g. {"retry": {"on_oom": false}, '
        '"train": {"positive_class": "fraud", "decision_threshold": 0.3}, "data": {"id_column": "charge_id"}}.',
    )

    def __init__(self, *args: Any, workflows: QuerySet[Workflow], **kwargs: Any):
        """`workflows`: those the user may launch (the request's project decides which image's apply)."""
        super().__init__(*args, **kwargs)
        self.fields["compute_resource"].choices = [(n, n) for n in railyard.compute_resources]
        self.fields["compute_resource"].initial = railyard.default_compute_resource
        offered = {w.name: f"{w.name} ({w.task})" for w in workflows.filter(is_available=True).order_by("name")}
        self.fields["workflow_name"].choices = list(offered.items())
        self.request_payload: dict | None = None

    def _json(self, name: str, default: Any) -> Any:
        raw = (self.cleaned_data.get(name) or "").strip()
        if not raw:
            return default
        try:
            return body.loads(raw, name)
        except body.InvalidRequest as exc:
            for messages in exc.errors.values():
                for message in messages:
                    self.add_error(name, message)
            return default

    def build_request(self) -> dict:
        """The request the fields make, with `more` merged in; a key is sent only when its field has
        a value, so that a clone launched unchanged is the request it was cloned from. A field that
        did not clean is left out (the contract then judges the rest, so that every error shows)."""
        d = self.cleaned_data
        source: dict[str, Any] = {
            "names": _split_names(d.get("names") or ""),
            "source": d.get("source_kind"),
            "format": d.get("source_format"),
            "path": d.get("source_path"),
        }
        if d.get("date_column"):
            source["date_column"] = d["date_column"].strip()
        if d.get("source_version_id"):
            source["version_id"] = d["source_version_id"].strip()
        data: dict[str, Any] = {"features": [source, *self._json("extra_sources", [])]}
        if d.get("date_start") or d.get("date_end"):
            data["date_range"] = {"start": _iso(d.get("date_start")), "end": _iso(d.get("date_end"))}
        if (d.get("filters") or "").strip():
            data["filters"] = self._json("filters", [])
        if d.get("sampling_function") == v.DATE_RANGE:
            holdout: dict[str, Any] = {
                "sampling_function": v.DATE_RANGE,
                "date_range": {"start": _iso(d.get("holdout_start")), "end": _iso(d.get("holdout_end"))},
            }
        else:
            holdout = {"sampling_function": v.RANDOM}
            for key in ("fraction", "seed"):
                if d.get(key) is not None:
                    holdout[key] = d[key]
            if stratify := (d.get("stratify") or "").strip():
                holdout["stratify"] = {"true": True, "false": False}.get(stratify.lower(), stratify)
        data["holdout_sampling"] = holdout
        train: dict[str, Any] = {
            "workflow_name": d.get("workflow_name"),
            "label": (d.get("label") or "").strip(),
            "classifier_features": _split_names(d.get("classifier_features") or ""),
        }
        if (d.get("custom_params") or "").strip():
            train["custom_params"] = self._json("custom_params", {})
        request: dict[str, Any] = {"project": d.get("project")}
        if d.get("user"):
            request["user"] = d["user"]
        request.update(
            model_description=d.get("model_description", ""),
            compute_resource=d.get("compute_resource"),
            data=data,
            train=train,
        )
        more = self._json("more", {})
        if not isinstance(more, dict):
            self.add_error("more", "Must be a JSON object (parts of the request).")
            more = {}
        return _merged(request, more)

    def clean(self) -> dict:
        cleaned = super().clean()
        unusable = set(self.errors)  # fields whose own check failed: the contract would only repeat it
        payload = self.build_request()
        try:
            contract.validate(payload)
        except body.InvalidRequest as exc:
            for path, messages in exc.errors.items():
                field = field_for(path)
                if field in unusable:
                    continue
                for message in messages:
                    if field in self.fields:
                        self.add_error(field, message)
                    else:
                        self.add_error(None, f"{path}: {message}")
            return cleaned
        if not self.errors:
            self.request_payload = payload
        return cleaned


def field_for(path: str) -> str | None:
    """The form field an error at a contract path belongs beside (a pattern without a field names
    it in its first group: `train.custom_params.CC` → `custom_params`)."""
    for pattern, field in FIELD_FOR_PATH:
        match = re.match(pattern, path)
        if match:
            return field or match.group(1)
    return None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _merged(base: dict, more: dict) -> dict:
    """`base` with `more` laid over it: objects merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in more.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


#: The parts of a request the form's fields show, by path; the rest goes to `more`.
SHOWN = [
    ("project",),
    ("user",),
    ("model_description",),
    ("compute_resource",),
    ("data", "features"),
    ("data", "date_range"),
    ("data", "filters"),
    ("data", "holdout_sampling", "sampling_function"),
    ("train", "workflow_name"),
    ("train", "label"),
    ("train", "classifier_features"),
    ("train", "custom_params"),
]
#: What the fields of each holdout show.
SHOWN_HOLDOUT = {v.DATE_RANGE: ("date_range",), v.RANDOM: ("fraction", "seed", "stratify")}


def _rest(request: dict) -> dict:
    """What of `request` no field shows (the form's `more`)."""
    rest = json.loads(json.dumps(request))
    holdout = (rest.get("data") or {}).get("holdout_sampling") or {}
    shown = [
        *SHOWN,
        *(("data", "holdout_sampling", key) for key in SHOWN_HOLDOUT.get(holdout.get("sampling_function"), ())),
    ]
    for path in shown:
        parent = rest
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return _pruned(rest)


def _pruned(value: Any) -> Any:
    """Objects left empty by `_rest` removed, all the way up."""
    if not isinstance(value, dict):
        return value
    kept = {key: _pruned(item) for key, item in value.items()}
    return {key: item for key, item in kept.items() if item != {} or value[key] == {}}


def initial_from_request(request: dict) -> dict:
    """The launch form's fields filled from a run's request, to clone it: launched unchanged, the
    form sends that very request."""
    data, train = request.get("data") or {}, request.get("train") or {}
    features = data.get("features") or [{}]
    first = features[0]
    holdout = data.get("holdout_sampling") or {}
    date_range, holdout_range = data.get("date_range") or {}, holdout.get("date_range") or {}
    stratify = holdout.get("stratify")
    rest = _rest(request)
    return {
        "project": request.get("project"),
        "user": request.get("user") or "",
        "model_description": request.get("model_description", ""),
        "compute_resource": request.get("compute_resource"),
        "source_kind": first.get("source", "file"),
        "source_path": first.get("path"),
        "source_format": first.get("format"),
        "source_version_id": first.get("version_id", ""),
        "names": ", ".join(first.get("names", [])),
        "date_column": first.get("date_column", ""),
        "extra_sources": json.dumps(features[1:], indent=2) if len(features) > 1 else "",
        "date_start": date_range.get("start"),
        "date_end": date_range.get("end"),
        "filters": json.dumps(data["filters"]) if "filters" in data else "",
        "sampling_function": holdout.get("sampling_function", v.RANDOM),
        "holdout_start": holdout_range.get("start"),
        "holdout_end": holdout_range.get("end"),
        "fraction": holdout.get("fraction", "" if holdout else v.DEFAULT_HOLDOUT_FRACTION),
        "seed": holdout.get("seed", "" if holdout else 0),
        "stratify": "" if stratify is None else json.dumps(stratify) if isinstance(stratify, bool) else stratify,
        "workflow_name": train.get("workflow_name"),
        "label": train.get("label"),
        "classifier_features": ", ".join(train.get("classifier_features", [])),
        "custom_params": json.dumps(train["custom_params"], indent=2) if "custom_params" in train else "",
        "more": json.dumps(rest, indent=2) if rest else "",
    }
