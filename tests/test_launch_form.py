"""The launch form: it builds the whole request, reports every error at once beside its field, and
a clone launched unchanged is the request it was cloned from."""

from __future__ import annotations

import re

import pytest

from training import services
from training.models import Run, Workflow

pytestmark = pytest.mark.usefixtures("workflows")


def form_data(dataset) -> dict:
    return {
        "project": "fraud",
        "model_description": "from the form",
        "compute_resource": "cpu",
        "source_kind": "file",
        "source_path": str(dataset["charges"]),
        "source_format": "parquet",
        "names": "created_at, amount, country, card_type, is_fraud",
        "date_column": "created_at",
        "extra_sources": "",
        "date_start": "2025-11-01",
        "date_end": "2026-11-01",
        "filters": '[{"feature_name": "amount", "predicate": "GtEq", "feature_value": 1}]',
        "sampling_function": "DATE_RANGE",
        "holdout_start": "2026-10-01",
        "holdout_end": "2026-11-01",
        "fraction": "",
        "seed": "",
        "workflow_name": "logistic_regression",
        "label": "is_fraud",
        "classifier_features": "amount, country, card_type",
        "custom_params": '{"C": 0.5}',
    }


def field_errors(html: str, field: str) -> list[str]:
    return re.findall(rf'<p class="field-error" id="id_{field}-error">([^<]*)</p>', html)


def test_the_launch_form_offers_the_catalogue(signed_in):
    html = signed_in.get("/runs/new").content.decode()
    assert '<option value="gradient_boosting">gradient_boosting (classification)</option>' in html
    assert '<option value="gpu">gpu</option>' in html


def test_the_launch_form_queues_a_run(signed_in, alice, dataset):
    response = signed_in.post("/runs/new", form_data(dataset))

    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}"
    assert run.owner == alice
    assert run.request["train"] == {
        "workflow_name": "logistic_regression",
        "label": "is_fraud",
        "classifier_features": ["amount", "country", "card_type"],
        "custom_params": {"C": 0.5},
    }
    assert run.request["data"]["holdout_sampling"]["date_range"] == {"start": "2026-10-01", "end": "2026-11-01"}


def test_the_launch_form_shows_errors_beside_their_fields(signed_in, dataset):
    data = {**form_data(dataset), "label": "is_fraudd", "holdout_end": "2027-01-01", "custom_params": "{oops"}

    response = signed_in.post("/runs/new", data)

    html = response.content.decode()
    assert response.status_code == 400
    assert field_errors(html, "custom_params") == [
        "Not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)."
    ]
    assert Run.objects.count() == 0


def test_the_launch_form_reports_contract_errors_like_the_api(signed_in, dataset):
    data = {**form_data(dataset), "label": "is_fraudd", "holdout_end": "2027-01-01", "source_path": "nope.parquet"}

    html = signed_in.post("/runs/new", data).content.decode()

    assert field_errors(html, "label") == ["&#x27;is_fraudd&#x27; is not among the feature sources&#x27; names."]
    assert "must lie inside the date range" in field_errors(html, "holdout_start")[0]
    assert field_errors(html, "source_path") == ["No file at &#x27;nope.parquet&#x27; under the data roots."]


def test_the_launch_form_shows_every_error_at_once(signed_in, dataset):
    data = {
        **form_data(dataset),
        "label": "",  # the field's own check
        "filters": '[{"feature_name": "amount", "predicate": "Between", "feature_value": 1}]',  # the contract's
        "holdout_end": "2027-01-01",
        "custom_params": '{"CC": 1}',  # the workflow's parameters
    }

    response = signed_in.post("/runs/new", data)

    html = response.content.decode()
    assert response.status_code == 400
    assert field_errors(html, "label") == ["This field is required."]  # once, not again by the contract
    assert "Unknown predicate &#x27;Between&#x27;" in field_errors(html, "filters")[0]
    assert "must lie inside the date range" in field_errors(html, "holdout_start")[0]
    assert field_errors(html, "custom_params") == ["`CC` is not a parameter of logistic_regression; did you mean `C`?"]
    assert Run.objects.count() == 0


def test_clone_fills_the_launch_form_from_a_run(signed_in, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    html = signed_in.get("/runs/new", {"clone": run.pk}).content.decode()
    assert f'Filled in from <a href="/runs/{run.pk}">run #{run.pk}</a>' in html
    assert 'name="label" value="is_fraud"' in html
    assert "&quot;max_iter&quot;: 30" in html
    assert 'value="2026-10-01"' in html


def test_a_sources_columns_and_types_are_offered_for_picking(signed_in, dataset, tmp_path):
    body = signed_in.get(
        "/sources/columns", {"source": "file", "format": "parquet", "path": str(dataset["charges"])}
    ).json()
    types = {c["name"]: c["type"] for c in body["columns"]}
    assert types["created_at"].startswith("timestamp")
    assert (types["amount"], types["is_fraud"], types["country"]) == ("double", "int64", "large_string")

    (tmp_path / "small.csv").write_text("a,b\n1,x\n")
    csv = signed_in.get("/sources/columns", {"source": "file", "format": "csv", "path": str(tmp_path / "small.csv")})
    assert csv.json() == {"columns": [{"name": "a", "type": "int64"}, {"name": "b", "type": "str"}]}

    missing = signed_in.get("/sources/columns", {"source": "file", "format": "parquet", "path": "nope.parquet"})
    nope = tmp_path / "data" / "nope.parquet"
    assert (missing.status_code, missing.json()) == (400, {"error": f"file {nope} does not exist"})


def varied_requests(fraud_request: dict) -> dict[str, dict]:
    """Requests that use every part of the contract the form has to carry."""
    import copy

    demo = copy.deepcopy(fraud_request)
    stratified = copy.deepcopy(fraud_request)
    stratified["user"] = "ada"
    stratified["data"].pop("date_range")
    stratified["data"]["holdout_sampling"] = {
        "sampling_function": "RANDOM",
        "fraction": 0.25,
        "seed": 7,
        "stratify": "country",
    }
    stratified["data"]["id_column"] = "charge_id"
    stratified["train"].update(
        positive_class=1, decision_threshold=0.3, custom_params={"max_iter": 20, "max_depth": None}
    )
    stratified["retry"] = {"on_oom": False}
    by_label = copy.deepcopy(fraud_request)
    by_label.pop("user")
    by_label["data"].pop("filters")
    by_label["data"]["holdout_sampling"] = {"sampling_function": "RANDOM", "stratify": True}
    by_label["train"].pop("custom_params")
    by_label["compute_resource"] = "highmem"
    pinned = copy.deepcopy(fraud_request)
    pinned["data"]["features"][0].update(source="s3", path="s3://features/charges.parquet", version_id="v-42")
    return {"demo": demo, "stratified": stratified, "by_label": by_label, "pinned": pinned}


@pytest.mark.parametrize("kind", ["demo", "stratified", "by_label", "pinned"])
def test_a_clone_launched_unchanged_is_the_request_it_was_cloned_from(alice, workflows, fraud_request, kind):
    from training.forms import LaunchForm, initial_from_request

    original = varied_requests(fraud_request)[kind]
    initial = initial_from_request(original)
    posted = {name: "" if value is None else str(value) for name, value in initial.items()}

    form = LaunchForm(posted, workflows=Workflow.objects.all())

    assert form.is_valid(), form.errors
    assert form.request_payload == original
