"""Every request that cannot train is refused with 400, naming each bad field."""

from __future__ import annotations

import json

import pytest

from railyard_trainer.errors import BadDataError
from railyard_trainer.spec import TrainSpec
from training.models import Run, Workflow

pytestmark = pytest.mark.usefixtures("workflows")


def post(api, body: bytes | str, **headers):
    return api.post("/api/v1/runs", data=body, content_type="application/json", **headers)


def source(request: dict, i: int = 0) -> dict:
    return request["data"]["features"][i]


def holdout(request: dict) -> dict:
    return request["data"]["holdout_sampling"]


CASES = {
    "unknown workflow": (
        lambda r: r["train"].update(workflow_name="xgboost_magic"),
        "train.workflow_name",
        "Unknown workflow 'xgboost_magic'",
    ),
    "label not among the names": (
        lambda r: r["train"].update(label="is_fraudulent"),
        "train.label",
        "'is_fraudulent' is not among the feature sources' names",
    ),
    "classifier feature not among the names": (
        lambda r: r["train"]["classifier_features"].append("ip_address"),
        "train.classifier_features",
        "'ip_address' not among the feature sources' names",
    ),
    "label used as a feature": (
        lambda r: r["train"]["classifier_features"].append("is_fraud"),
        "train.classifier_features",
        "cannot also be a feature",
    ),
    "date range start not before end": (
        lambda r: r["data"].update(date_range={"start": "2026-11-01", "end": "2026-01-01"}),
        "data.date_range.start",
        "must be before the end",
    ),
    "date range with an empty span": (
        lambda r: r["data"].update(date_range={"start": "2026-01-01", "end": "2026-01-01"}),
        "data.date_range.start",
        "must be before the end",
    ),
    "date that is not a date": (
        lambda r: r["data"].update(date_range={"start": "last tuesday", "end": "2026-01-01"}),
        "data.date_range.start",
        "is not a date",
    ),
    "holdout range outside the date range": (
        lambda r: holdout(r).update(date_range={"start": "2026-10-01", "end": "2026-12-01"}),
        "data.holdout_sampling.date_range",
        "must lie inside the date range",
    ),
    "holdout range before the date range": (
        lambda r: holdout(r).update(date_range={"start": "2025-01-01", "end": "2025-02-01"}),
        "data.holdout_sampling.date_range",
        "must lie inside the date range",
    ),
    "DATE_RANGE holdout without a range": (
        lambda r: holdout(r).pop("date_range"),
        "data.holdout_sampling.date_range",
        "DATE_RANGE needs the holdout's date_range",
    ),
    "unknown sampling function": (
        lambda r: holdout(r).update(sampling_function="KFOLD"),
        "data.holdout_sampling.sampling_function",
        "Unknown sampling function 'KFOLD'",
    ),
    "random fraction out of range": (
        lambda r: r["data"].update(holdout_sampling={"sampling_function": "RANDOM", "fraction": 1.5}),
        "data.holdout_sampling.fraction",
        "between 0 and 1",
    ),
    "unknown predicate": (
        lambda r: r["data"]["filters"][0].update(predicate="Between"),
        "data.filters[0].predicate",
        "Unknown predicate 'Between'",
    ),
    "IsIn with a scalar": (
        lambda r: r["data"]["filters"].append({"feature_name": "country", "predicate": "IsIn", "feature_value": "US"}),
        "data.filters[1].feature_value",
        "IsIn needs a non-empty list",
    ),
    "comparison with a list": (
        lambda r: r["data"]["filters"][0].update(feature_value=[1, 2]),
        "data.filters[0].feature_value",
        "GtEq needs a number or a date string",
    ),
    "IsNull with a value": (
        lambda r: r["data"]["filters"].append({"feature_name": "country", "predicate": "IsNull", "feature_value": 3}),
        "data.filters[1].feature_value",
        "IsNull takes no value",
    ),
    "filter on an unknown feature": (
        lambda r: r["data"]["filters"][0].update(feature_name="amount_usd"),
        "data.filters[0].feature_name",
        "'amount_usd' is not among",
    ),
    "unknown source": (
        lambda r: source(r).update(source="ftp"),
        "data.features[0].source",
        "Unknown source 'ftp'",
    ),
    "unknown format": (
        lambda r: source(r).update(format="xlsx"),
        "data.features[0].format",
        "Unknown format 'xlsx'",
    ),
    "file that does not exist": (
        lambda r: source(r).update(path="missing/charges.parquet"),
        "data.features[0].path",
        "No file at 'missing/charges.parquet' under the data roots",
    ),
    "date column not among the names": (
        lambda r: source(r).update(date_column="captured_at"),
        "data.features[0].date_column",
        "'captured_at' is not among this source's names",
    ),
    "second source without a join key": (
        lambda r: source(r, 1).pop("join_on"),
        "data.features[1].join_on",
        "need the key to join them on",
    ),
    "unknown compute resource": (
        lambda r: r.update(compute_resource="tpu"),
        "compute_resource",
        "Unknown compute resource 'tpu'",
    ),
    "custom_params that are not an object": (
        lambda r: r["train"].update(custom_params=[1, 2]),
        "train.custom_params",
        "Must be a JSON object",
    ),
    "unknown workflow parameter": (
        lambda r: r["train"]["custom_params"].update(max_iters=10),
        "train.custom_params.max_iters",
        "`max_iters` is not a parameter of gradient_boosting; did you mean `max_iter`?",
    ),
    "workflow parameter of the wrong type": (
        lambda r: r["train"]["custom_params"].update(max_iter="ten"),
        "train.custom_params.max_iter",
        '`max_iter` must be an integer ≥ 1 (got "ten").',
    ),
    "workflow parameter out of its range": (
        lambda r: r["train"]["custom_params"].update(learning_rate=0),
        "train.custom_params.learning_rate",
        "`learning_rate` must be a number > 0 (got 0).",
    ),
    "version pinned on a file source": (
        lambda r: source(r).update(version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"),
        "data.features[0].version_id",
        "A version pins one S3 object: give an s3 source the object's key.",
    ),
    "id column not among the names": (
        lambda r: r["data"].update(id_column="transaction_ref"),
        "data.id_column",
        "'transaction_ref' is not among the feature sources' names.",
    ),
    "positive class that is not a value": (
        lambda r: r["train"].update(positive_class=["fraud"]),
        "train.positive_class",
        "Must be one of the label's values",
    ),
    "decision threshold out of range": (
        lambda r: r["train"].update(decision_threshold=1.5),
        "train.decision_threshold",
        "Must be a number between 0 and 1 (exclusive).",
    ),
    "workflow name that is an object, with parameters": (
        lambda r: r["train"].update(workflow_name={}),
        "train.workflow_name",
        "Must be a workflow's name.",
    ),
    "unknown top-level field": (
        lambda r: r.update(labels="is_fraud"),
        "labels",
        "Unknown field",
    ),
    "missing train section": (
        lambda r: r.pop("train"),
        "train",
        "This field is required",
    ),
    "project that is not a slug": (
        lambda r: r.update(project="fraud models/2026"),
        "project",
        "letters, digits",
    ),
    "retry that is not an object": (
        lambda r: r.update(retry=True),
        "retry",
        "Must be a JSON object",
    ),
    "retry on memory that is not true or false": (
        lambda r: r.update(retry={"on_oom": "yes"}),
        "retry.on_oom",
        "Must be true or false",
    ),
    "unknown retry setting": (
        lambda r: r.update(retry={"on_crash": True}),
        "retry.on_crash",
        "Unknown field",
    ),
    "empty features list": (
        lambda r: r["data"].update(features=[]),
        "data.features",
        "This field is required",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_it_refuses_a_request_that_cannot_train(api, fraud_request, case):
    mutate, path, message = CASES[case]
    mutate(fraud_request)

    response = post(api, json.dumps(fraud_request))

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert path in errors, errors
    assert any(message in m for m in errors[path]), errors[path]
    assert Run.objects.count() == 0


#: What only the service can judge: installed workflows, files under its data roots, compute profiles,
#: and the request's own top-level fields.
SERVICE_ONLY = {
    "unknown workflow",
    "file that does not exist",
    "unknown compute resource",
    "project that is not a slug",
    # Parameters are the workflow's: the trainer checks them once it has loaded it (see test_trainer).
    "unknown workflow parameter",
    "workflow parameter of the wrong type",
    "workflow parameter out of its range",
}
SPEC_CASES = [c for c in CASES if c not in SERVICE_ONLY and CASES[c][1].startswith(("data", "train"))]


@pytest.mark.parametrize("case", SPEC_CASES, ids=SPEC_CASES)
def test_the_trainer_refuses_the_same_spec_with_the_same_words(fraud_request, case):
    mutate, path, message = CASES[case]
    mutate(fraud_request)

    with pytest.raises(BadDataError) as refused:
        TrainSpec.from_dict({**fraud_request, "run_id": "1", "seed": 0})

    assert f"{path}: " in str(refused.value)
    assert message in str(refused.value)


def test_it_suggests_the_parameter_meant_and_accepts_the_declared_ones(api, fraud_request):
    fraud_request["train"].update(workflow_name="logistic_regression", custom_params={"CC": 1})
    errors = post(api, json.dumps(fraud_request)).json()["errors"]
    assert errors == {"train.custom_params.CC": ["`CC` is not a parameter of logistic_regression; did you mean `C`?"]}

    fraud_request["train"]["custom_params"] = {"C": 0.5, "solver": "saga", "class_weight": "balanced", "tol": 1}
    assert post(api, json.dumps(fraud_request)).status_code == 201


def test_it_names_every_bad_field_at_once(api, fraud_request):
    fraud_request["train"]["workflow_name"] = "nope"
    fraud_request["train"]["label"] = "nope"
    fraud_request["compute_resource"] = "tpu"
    fraud_request["data"]["filters"][0]["predicate"] = "Like"

    errors = post(api, json.dumps(fraud_request)).json()["errors"]

    assert {"train.workflow_name", "train.label", "compute_resource", "data.filters[0].predicate"} <= set(errors)


def test_it_passes_custom_params_through_untouched_to_a_workflow_that_declares_none(api, fraud_request):
    Workflow.objects.create(name="team_workflow", task="classification", parameters=None)
    params = {"max_iter": 5, "my_team_setting": {"nested": [1, "two", None]}, "weird key!": True}
    fraud_request["train"].update(workflow_name="team_workflow", custom_params=params)
    run = Run.objects.get(pk=post(api, json.dumps(fraud_request)).json()["id"])
    assert run.spec["train"]["custom_params"] == params


def test_it_refuses_an_empty_body(api):
    response = post(api, b"")
    assert response.status_code == 400
    assert "empty" in response.json()["errors"]["body"][0]


def test_it_refuses_a_body_that_is_not_json(api):
    response = post(api, b"{'user': 'ada',")
    assert response.status_code == 400
    assert "Not valid JSON" in response.json()["errors"]["body"][0]


def test_it_refuses_a_body_that_is_not_an_object(api):
    response = post(api, b"[1, 2, 3]")
    assert response.status_code == 400
    assert response.json()["errors"]["body"] == ["Must be a JSON object."]


def test_it_refuses_an_oversized_body(api, fraud_request, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    fraud_request["model_description"] = "x" * 4096
    response = post(api, json.dumps(fraud_request))
    assert response.status_code == 400
    assert "too large" in response.json()["detail"]
    assert Run.objects.count() == 0


def nested(depth: int) -> str:
    """custom_params `depth` objects deep (counting itself), as JSON text."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize("depth", [64, 500, 1_000, 20_000])
def test_it_refuses_json_nested_deeper_than_64_levels(api, fraud_request, depth):
    fraud_request["train"]["custom_params"] = "DEEP"
    body = json.dumps(fraud_request).replace('"DEEP"', nested(depth))

    response = post(api, body)

    assert response.status_code == 400
    assert any("nested at most 64 levels" in m for ms in response.json()["errors"].values() for m in ms)
    assert Run.objects.count() == 0


def test_it_accepts_json_nested_64_levels(api, fraud_request):
    Workflow.objects.create(name="team_workflow", task="classification", parameters=None)  # takes any params
    fraud_request["train"]["workflow_name"] = "team_workflow"
    fraud_request["train"]["custom_params"] = "DEEP"
    body = json.dumps(fraud_request).replace('"DEEP"', nested(62))  # custom_params is 2 levels down
    assert post(api, body).status_code == 201


@pytest.mark.parametrize(
    ("place", "path"),
    [
        (lambda r: r.update(model_description="weekly\x00"), "model_description"),
        (lambda r: r["train"]["custom_params"].update(note="a\x00b"), "train.custom_params.note"),
        (lambda r: r["train"]["custom_params"].update({"k\x00": 1}), "train.custom_params.k\\0"),
        (
            lambda r: r["data"]["filters"].append(
                {"feature_name": "country", "predicate": "Eq", "feature_value": "\x00"}
            ),
            "data.filters[1].feature_value",
        ),
    ],
    ids=["description", "custom param value", "custom param name", "filter value"],
)
def test_it_refuses_nul_characters_in_the_body(api, fraud_request, place, path):
    place(fraud_request)

    response = post(api, json.dumps(fraud_request))

    assert response.status_code == 400
    assert "must not contain NUL characters." in response.json()["errors"][path][0].lower().replace("nul", "NUL")
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/runs?status=%00",
        "/api/v1/runs?project=a%00b",
        "/api/v1/runs?user=%00",
        "/api/v1/runs?workflow_name=%00",
        "/api/v1/runs/1/artifacts/model%00.joblib",
    ],
)
def test_it_refuses_nul_characters_in_api_urls(api, url):
    response = api.get(url)

    assert response.status_code == 400
    assert response.json()["errors"]
    assert response.json()["detail"] == "The request holds a NUL character."


@pytest.mark.parametrize("url", ["/?q=%00", "/?status=%00", "/?project=%00", "/?user=%00", "/compare?runs=%00"])
def test_it_refuses_nul_characters_in_page_urls(client, alice, url):
    client.force_login(alice)

    response = client.get(url)

    assert response.status_code == 400
    assert "NUL character" in response.content.decode()


@pytest.mark.parametrize(
    ("where", "path"),
    [('"model_description": "', "model_description"), ('"custom_params": {', "train.custom_params.\\ud800")],
    ids=["in a value", "in a field name"],
)
def test_it_refuses_lone_surrogate_escapes_in_the_body(api, fraud_request, where, path):
    """`"\\ud800"` is valid JSON but not storable text (PostgreSQL's driver cannot encode it)."""
    inserted = "\\ud800" if where.endswith('"') else '"\\ud800": 1, '
    body = json.dumps(fraud_request).replace(where, where + inserted, 1)

    response = post(api, body)

    assert response.status_code == 400
    assert response.json()["errors"][path] == [
        ("Field names must" if "{" in where else "Must") + " not contain lone surrogate escapes (\\ud800 to \\udfff)."
    ]
    assert Run.objects.count() == 0


def test_it_refuses_a_nul_character_in_the_idempotency_key(api, fraud_request):
    response = post(api, json.dumps(fraud_request), HTTP_IDEMPOTENCY_KEY="a\x00b")
    assert response.status_code == 400
    assert response.json()["errors"]["Idempotency-Key"] == ["Must not contain control characters."]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/runs?page_size=%C2%B3",
        "/api/v1/runs?page_size=0",
        "/api/v1/runs?page_size=abc",
        "/api/v1/runs?status=finished",
        "/api/v1/runs?status=",
        "/api/v1/runs?page=",
        "/api/v1/runs?page=last",
        "/api/v1/runs?page=0",
        "/api/v1/runs?cursor=",
        "/api/v1/runs?cursor=abc",
        "/api/v1/runs?cursor=99999999999999999999",
        "/api/v1/runs/1/logs?tail=%C2%B3",
        "/api/v1/runs/1/logs?tail=-3",
    ],
)
def test_it_answers_400_to_query_parameters_it_cannot_use(api, alice, fraud_request, url):
    from training import services

    services.submit(alice, fraud_request)  # run 1 may not be this one; the parameter is refused first
    response = api.get(url.replace("/runs/1/", f"/runs/{Run.objects.get().pk}/"))

    assert response.status_code == 400
    assert response.json()["errors"]


@pytest.mark.parametrize(
    "url",
    [
        "/?before_id=%C2%B3",
        "/?before_id=99999999999999999999999",
        "/runs/statuses?ids=%C2%B3,99999999999999999999999",
        "/runs/new?clone=%C2%B3",
        "/api/v1/runs/99999999999999999999999",
    ],
)
def test_odd_numbers_in_urls_are_not_server_errors(api, client, alice, url):
    client.force_login(alice)
    response = (api if url.startswith("/api/") else client).get(url)
    assert response.status_code in (200, 404)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            lambda r: r["data"].update(features=r["data"]["features"] * 11),
            "data.features",
            "at most 20 feature sources (there are 22)",
        ),
        (
            lambda r: r["data"].update(filters=r["data"]["filters"] * 201),
            "data.filters",
            "at most 200 filters (there are 201)",
        ),
        (
            lambda r: r["train"].update(classifier_features=[f"c{i}" for i in range(2001)]),
            "train.classifier_features",
            "at most 2000 columns (there are 2001)",
        ),
        (
            lambda r: source(r)["names"].extend(f"c{i}" for i in range(2000)),
            "data.features[0].names",
            "at most 2000 columns",
        ),
    ],
)
def test_a_request_past_its_size_limits_is_a_400_naming_the_field(api, fraud_request, change, field, words):
    change(fraud_request)
    answer = post(api, json.dumps(fraud_request))
    assert answer.status_code == 400
    assert any(words in message for message in answer.json()["errors"][field]), answer.json()
    assert not Run.objects.exists()
