"""Each project reads only its own data: the file roots and S3 prefixes an operator gave it (else the
installation's), held to at submit, by "Read columns" and by the trainer, whose Kubernetes Jobs get only
the project's credentials Secret."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from railyard_trainer import sources
from railyard_trainer.paths import ROOTS_ENV, S3_PREFIXES_ENV, PathNotAllowed, allowed_s3
from railyard_trainer.spec import FeatureSource
from tests.conftest import launched
from training import services, worker
from training.executors import get_executor
from training.models import Project

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def shared(settings, railyard_dirs, dataset) -> Path:
    """The installation's data root, holding the dataset."""
    root = railyard_dirs / "data"
    for path in dataset.values():
        shutil.copy(path, root / path.name)
    settings.RAILYARD = {**settings.RAILYARD, "DATA_ROOTS": [root]}
    return root


@pytest.fixture
def fraud_only(tmp_path, dataset, alice, api) -> Path:
    """Project fraud (alice maintains it) reads only its own folder, and only s3://features/fraud/."""
    root = tmp_path / "fraud-data"
    root.mkdir()
    for path in dataset.values():
        shutil.copy(path, root / path.name)
    assert api.post("/api/v1/projects", {"name": "fraud"}, format="json").status_code == 201
    Project.objects.filter(name="fraud").update(
        data_roots=[str(root)], s3_prefixes=["s3://features/fraud/"], credentials_secret="fraud-data"
    )
    return root


def with_path(request: dict, path: str, source: str = "file") -> dict:
    request["data"]["features"][0].update(path=path, source=source)
    return request


def test_a_projects_own_roots_replace_the_installations(api, shared, fraud_only, fraud_request):
    refused = api.post("/api/v1/runs", with_path(fraud_request, str(shared / "charges.parquet")), format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"]["data.features[0].path"] == [
        f"'{shared / 'charges.parquet'}' is not a file Railyard may read: file sources must lie under a data root "
        f"({fraud_only})."
    ]
    fraud_request["data"]["features"][1]["path"] = "merchants.parquet"
    made = api.post("/api/v1/runs", with_path(fraud_request, "charges.parquet"), format="json")
    assert made.status_code == 201, made.json()
    spec = services.Run.objects.get(pk=made.json()["id"]).spec
    assert spec["data"]["features"][0]["path"] == str(fraud_only / "charges.parquet")  # relative: from its root
    elsewhere = {**fraud_request, "project": "churn"}  # a project of the defaults cannot reach fraud's folder
    other = api.post("/api/v1/runs", with_path(elsewhere, str(fraud_only / "charges.parquet")), format="json")
    assert other.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "s3://features/charges/",
        "s3://features/fraudulent/charges.parquet",
        "s3://features/fraud/../charges/x.parquet",
        "s3://other-bucket/fraud/x.parquet",
    ],
)
def test_bucket_and_prefix_escapes_are_refused(api, shared, fraud_only, fraud_request, path):
    refused = api.post("/api/v1/runs", with_path(fraud_request, path, "s3"), format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"]["data.features[0].path"] == [
        f"{path!r} is not S3 data Railyard may read: s3 sources must lie under s3://features/fraud/."
    ]


def test_s3_prefixes_match_whole_folders():
    allowed_s3("s3://features/fraud/2026/x.parquet", ["s3://features/fraud"])
    allowed_s3("s3://features/fraud", ["s3://features/fraud/"])
    allowed_s3("s3://anything/at/all", [])
    for escape in ("s3://features/fraudulent/x", "s3://features/fraud/./x", "s3://features"):
        with pytest.raises(PathNotAllowed):
            allowed_s3(escape, ["s3://features/fraud/"])


def test_the_trainer_refuses_a_bucket_outside_its_prefixes_before_asking_s3(monkeypatch):
    monkeypatch.setenv(S3_PREFIXES_ENV, "s3://features/fraud/")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: it must not be asked
    source = FeatureSource(names=["amount"], source="s3", format="parquet", path="s3://features/charges/")
    with pytest.raises(PathNotAllowed) as refused:
        sources.read_source(source, "data.features[0]")
    assert str(refused.value).startswith("data.features[0]: 's3://features/charges/' is not S3 data")


def test_a_job_gets_its_projects_roots_prefixes_and_secret(api, shared, fraud_only, fraud_request, alice):
    fraud_request["data"]["features"][1]["path"] = "merchants.parquet"
    run = services.submit(alice, with_path(fraud_request, "charges.parquet"))[0]
    job = launched(run)
    inputs = worker.job_inputs(job, run, get_executor("local"))
    assert inputs.env[ROOTS_ENV] == str(fraud_only)
    assert inputs.env[S3_PREFIXES_ENV] == "s3://features/fraud/"
    assert inputs.secrets == ("fraud-data",)
    churn = services.submit(alice, {**fraud_request, "project": "churn", "data": _shared_data(fraud_request, shared)})
    other = worker.job_inputs(launched(churn[0]), churn[0], get_executor("local"))
    assert other.env[ROOTS_ENV] == str(shared)
    assert other.secrets == ()  # the installation's (none here): never fraud's


def _shared_data(request: dict, root: Path) -> dict:
    data = {**request["data"], "features": [dict(source) for source in request["data"]["features"]]}
    for source in data["features"]:
        source["path"] = str(root / Path(source["path"]).name)
    return data


def test_read_columns_reads_only_the_named_projects_data(client, alice, bob, shared, fraud_only):
    client.force_login(alice)
    mine = client.get(
        "/sources/columns", {"source": "file", "format": "parquet", "path": "charges.parquet", "project": "fraud"}
    )
    assert "amount" in [column["name"] for column in mine.json()["columns"]]
    outside = {"source": "file", "format": "parquet", "path": str(shared / "charges.parquet"), "project": "fraud"}
    assert client.get("/sources/columns", outside).status_code == 400
    bucket = {"source": "s3", "format": "parquet", "path": "s3://features/charges/", "project": "fraud"}
    assert "is not S3 data Railyard may read" in client.get("/sources/columns", bucket).json()["error"]
    client.force_login(bob)
    theirs = client.get("/sources/columns", {**outside, "path": "charges.parquet"})
    assert theirs.status_code == 403


def test_operators_set_absolute_roots_s3_places_and_a_secret_name():
    project = Project(name="fraud", data_roots=["data/fraud"], s3_prefixes=["features/fraud"], credentials_secret="A_B")
    with pytest.raises(ValidationError) as refused:
        project.clean()
    assert set(refused.value.message_dict) == {"data_roots", "s3_prefixes", "credentials_secret"}
    Project(
        name="fraud", data_roots=["/data/fraud"], s3_prefixes=["s3://features/fraud/"], credentials_secret="fraud-s3"
    ).clean()
