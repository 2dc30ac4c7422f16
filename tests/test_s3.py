"""S3 as a data source and as the artifact store, over HTTP against moto's S3 server."""

from __future__ import annotations

import hashlib
import io
import json

import boto3
import pandas as pd
import pytest
from rest_framework.test import APIClient

from railyard_trainer.errors import BadDataError
from railyard_trainer.sources import read_source
from railyard_trainer.spec import DateRange, FeatureSource
from railyard_trainer.storage import S3Store, StoreError
from tests.conftest import wait_for_terminal
from tests.s3_server import S3Server
from training import services, worker
from training.models import Run

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """boto3's own environment variables, pointed at the test server; nothing Railyard-specific."""
    s3_server.reset()
    for name, value in {
        "AWS_ENDPOINT_URL": s3_server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3")
    for bucket in ("features", "artifacts"):
        client.create_bucket(Bucket=bucket)
    return client


@pytest.fixture
def partitioned(s3, dataset) -> pd.DataFrame:
    """Charges from June to October 2026 as `charges/date=YYYY-MM-DD/part-0.parquet`, one file a day."""
    charges = pd.read_parquet(dataset["charges"])
    charges = charges[(charges["created_at"] >= "2026-06-01") & (charges["created_at"] < "2026-11-01")].copy()
    charges["date"] = charges["created_at"].dt.strftime("%Y-%m-%d")
    for day, rows in charges.groupby("date"):
        buffer = io.BytesIO()
        rows.drop(columns=["date"]).to_parquet(buffer, index=False)
        s3.put_object(Bucket="features", Key=f"charges/date={day}/part-0.parquet", Body=buffer.getvalue())
    s3.put_object(Bucket="features", Key="charges/_SUCCESS", Body=b"")
    return charges


def s3_request(fraud_request: dict) -> dict:
    fraud_request["data"] = {
        "features": [
            {
                "names": ["date", "amount", "country", "card_type", "card_present", "is_fraud"],
                "source": "s3",
                "format": "parquet",
                "path": "s3://features/charges/",
                "date_column": "date",
            }
        ],
        "date_range": {"start": "2026-07-01", "end": "2026-11-01"},
        "holdout_sampling": {
            "sampling_function": "DATE_RANGE",
            "date_range": {"start": "2026-10-01", "end": "2026-11-01"},
        },
    }
    fraud_request["train"]["classifier_features"] = ["amount", "country", "card_type", "card_present"]
    return fraud_request


@pytest.mark.slow
def test_a_run_reads_a_partitioned_dataset_from_s3_and_keeps_every_artifact_there(
    s3, s3_server, partitioned, alice, client, fraud_request, settings
):
    settings.RAILYARD = {**settings.RAILYARD, "ARTIFACT_STORE": "s3://artifacts/railyard"}
    run, _ = services.submit(alice, s3_request(fraud_request))

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    # Finishing checked the model by its metadata (a HEAD request), and never downloaded it again.
    model_key = f"/railyard/runs/{run.pk}/attempt-1/model.joblib"
    assert not any(method == "GET" and path.endswith(model_key) for method, path in s3_server.requests)
    assert any(method == "HEAD" and path.endswith(model_key) for method, path in s3_server.requests)
    assert run.artifact_uri == f"s3://artifacts/railyard/runs/{run.pk}/attempt-1"
    in_range = partitioned[partitioned["date"] >= "2026-07-01"]
    assert run.data_summary["holdout_rows"] == (in_range["date"] >= "2026-10-01").sum()
    assert run.data_summary["train_rows"] == (in_range["date"] < "2026-10-01").sum()
    listed = s3.list_objects_v2(Bucket="artifacts", Prefix=f"railyard/runs/{run.pk}/attempt-1/")["Contents"]
    stored = {obj["Key"].rsplit("/", 1)[1] for obj in listed}
    artifacts = {a.name: a for a in run.artifacts.all()}
    assert set(artifacts) == stored - {"manifest.json"}
    for name, artifact in artifacts.items():
        body = s3.get_object(Bucket="artifacts", Key=f"railyard/runs/{run.pk}/attempt-1/{name}")
        data = body["Body"].read()
        assert hashlib.sha256(data).hexdigest() == artifact.sha256 == body["Metadata"]["sha256"]
        assert artifact.uri == f"s3://artifacts/railyard/runs/{run.pk}/attempt-1/{name}"
    log = s3.get_object(Bucket="artifacts", Key=f"railyard/runs/{run.pk}/attempt-1/log.txt")["Body"].read().decode()
    assert (
        f"s3://features/charges/: reading {in_range['date'].nunique()} of {partitioned['date'].nunique()} files" in log
    )
    fetched = [path.replace("%3D", "=") for method, path in s3_server.requests if method == "GET"]
    assert any("date=2026-07-01/" in path for path in fetched)
    assert not any("date=2026-06" in path for path in fetched)  # outside the date range: never downloaded

    token_client = APIClient()
    token_client.force_authenticate(alice)
    download = token_client.get(f"/api/v1/runs/{run.pk}/artifacts/holdout_scores.parquet")
    assert download.status_code == 200
    assert (
        hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == artifacts["holdout_scores.parquet"].sha256
    )
    assert APIClient().get(f"/api/v1/runs/{run.pk}/artifacts/holdout_scores.parquet").status_code == 401
    client.force_login(alice)
    page = client.get(f"/runs/{run.pk}").content.decode()
    # the charts come from evaluation.json in the bucket
    specs = json.loads(page.split('<script id="chart-specs" type="application/json">')[1].split("</script>")[0])
    assert specs[0]["layout"]["title"]["text"] == "ROC curve"
    assert len(specs) == 6

    s3_server.fail("GET", f"/runs/{run.pk}/", 403, "AccessDenied", times=50)
    refused = token_client.get(f"/api/v1/runs/{run.pk}/artifacts/model.joblib")
    assert refused.status_code == 503
    assert "access denied" in refused.json()["detail"]
    assert client.get(f"/runs/{run.pk}").status_code == 200  # the page still shows what it can


def source(path: str, fmt: str = "parquet") -> FeatureSource:
    return FeatureSource(names=["amount", "is_fraud"], source="s3", format=fmt, path=path)


def test_a_missing_bucket_is_named(s3):
    with pytest.raises(
        BadDataError,
        match=r"^data.features\[0\]: s3://no-such-bucket/charges/: the bucket does not "
        r"exist$",
    ):
        read_source(source("s3://no-such-bucket/charges/"), "data.features[0]")


def test_a_missing_key_is_named(s3):
    with pytest.raises(
        BadDataError,
        match=r"^data.features\[0\]: s3://features/charges/2026.parquet: no such "
        r"object$",
    ):
        read_source(source("s3://features/charges/2026.parquet"), "data.features[0]")


def test_an_empty_prefix_is_named(s3):
    with pytest.raises(BadDataError, match=r"s3://features/empty/: no parquet files there$"):
        read_source(source("s3://features/empty/"), "data.features[0]")


def test_access_denied_is_named(s3, s3_server):
    s3.put_object(Bucket="features", Key="secret/charges.parquet", Body=b"x")
    s3_server.fail("HEAD", "/secret/charges.parquet", 403, "AccessDenied")
    with pytest.raises(BadDataError, match=r"s3://features/secret/charges.parquet: access denied$"):
        read_source(source("s3://features/secret/charges.parquet"), "data.features[0]")


def test_an_unreadable_file_is_named(s3):
    s3.put_object(Bucket="features", Key="broken/part-0.parquet", Body=b"this is not parquet")
    with pytest.raises(BadDataError, match=r"cannot read parquet file s3://features/broken/part-0.parquet: "):
        read_source(source("s3://features/broken/"), "data.features[0]")


def test_only_the_needed_columns_of_a_csv_object_are_read(s3):
    s3.put_object(Bucket="features", Key="csv/charges.csv", Body=b"amount,is_fraud,noise\n1.5,0,x\n9,1,y\n")
    frame = read_source(source("s3://features/csv/charges.csv", "csv"), "data.features[0]")
    assert frame.to_dict("list") == {"amount": [1.5, 9.0], "is_fraud": [0, 1]}


def test_a_pinned_object_version_is_read_whatever_the_key_holds_now_and_what_was_read_is_recorded(s3):
    s3.put_bucket_versioning(Bucket="features", VersioningConfiguration={"Status": "Enabled"})
    versions = []
    for amounts in ([1.0, 2.0], [7.0, 8.0, 9.0]):
        buffer = io.BytesIO()
        pd.DataFrame({"amount": amounts, "is_fraud": [0] * len(amounts)}).to_parquet(buffer)
        versions.append(s3.put_object(Bucket="features", Key="v/charges.parquet", Body=buffer.getvalue()))
    pinned = FeatureSource(
        names=["amount", "is_fraud"],
        source="s3",
        format="parquet",
        path="s3://features/v/charges.parquet",
        version_id=versions[0]["VersionId"],
    )
    read: dict = {}

    frame = read_source(pinned, "data.features[0]", read=read)

    assert frame["amount"].tolist() == [1.0, 2.0]  # the first version, though the key now holds three rows
    assert read["version_id"] == versions[0]["VersionId"]
    assert read["etag"] == versions[0]["ETag"].strip('"')
    latest: dict = {}
    assert read_source(source("s3://features/v/charges.parquet"), "data.features[0]", read=latest)[
        "amount"
    ].tolist() == [
        7.0,
        8.0,
        9.0,
    ]
    assert latest["version_id"] == versions[1]["VersionId"]


def test_many_objects_are_recorded_as_one_digest_of_their_keys_and_etags(s3):
    for part in range(3):
        buffer = io.BytesIO()
        pd.DataFrame({"amount": [float(part)], "is_fraud": [0]}).to_parquet(buffer)
        s3.put_object(Bucket="features", Key=f"many/part-{part}.parquet", Body=buffer.getvalue())
    read: dict = {}
    read_source(source("s3://features/many/"), "data.features[0]", read=read)
    s3.put_object(
        Bucket="features",
        Key="many/part-3.parquet",
        Body=s3.get_object(Bucket="features", Key="many/part-0.parquet")["Body"].read(),
    )
    again: dict = {}
    read_source(source("s3://features/many/"), "data.features[0]", read=again)

    assert (read["objects"], again["objects"]) == (3, 4)
    assert read["etag"] != again["etag"]
    assert again["size"] > read["size"]


def test_partitions_outside_the_date_range_are_not_read(s3, s3_server):
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        buffer = io.BytesIO()
        pd.DataFrame({"amount": [1.0], "is_fraud": [0]}).to_parquet(buffer)
        s3.put_object(Bucket="features", Key=f"p/date={day}/part-0.parquet", Body=buffer.getvalue())
    spec = FeatureSource(
        names=["date", "amount"], source="s3", format="parquet", path="s3://features/p/", date_column="date"
    )
    s3_server.requests.clear()

    frame = read_source(spec, "data.features[0]", DateRange.parse({"start": "2026-01-02", "end": "2026-01-03"}))

    assert frame.to_dict("list") == {"date": ["2026-01-02"], "amount": [1.0]}
    assert len([m for m, _ in s3_server.requests if m == "GET" and "part-0" in _]) == 1


@pytest.mark.slow
def test_a_burst_of_server_errors_on_upload_is_retried(s3, s3_server, partitioned, alice, fraud_request, settings):
    settings.RAILYARD = {**settings.RAILYARD, "ARTIFACT_STORE": "s3://artifacts/railyard"}
    s3_server.fail("PUT", "/railyard/runs/", 500, "InternalError", times=4)
    run, _ = services.submit(alice, s3_request(fraud_request))

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert s3_server.faults[0].times == 0  # every injected 500 was answered, and retried
    assert run.artifacts.filter(name="model.joblib").exists()


def test_a_changed_object_fails_its_checksum(s3):
    store = S3Store("artifacts", "runs/7")
    store.put("metrics.json", b'{"auc": 0.9}', "application/json")
    head = s3.head_object(Bucket="artifacts", Key="runs/7/metrics.json")
    s3.put_object(Bucket="artifacts", Key="runs/7/metrics.json", Body=b'{"auc": 1.0}', Metadata=head["Metadata"])

    with pytest.raises(
        StoreError,
        match=r"s3://artifacts/runs/7/metrics.json: the content does not match its "
        r"recorded sha256",
    ):
        store.get("metrics.json")


def test_large_artifacts_are_uploaded_in_parts(s3, s3_server):
    store = S3Store("artifacts", "runs/8")
    data = bytes(range(256)) * (20 * 1024 * 1024 // 256)

    stored = store.put("model.joblib", data, "application/octet-stream")

    assert any(method == "POST" and "uploads" in path for method, path in s3_server.requests)
    assert store.get("model.joblib") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.exists("model.joblib")
    assert not store.exists("nothing.json")


def test_the_request_contract_accepts_s3_paths_and_refuses_others(api, fraud_request):
    request = s3_request(fraud_request)
    request["data"]["features"][0]["path"] = "s3:/features/charges"
    response = api.post("/api/v1/runs", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 400
    assert "s3://bucket/key" in response.json()["errors"]["data.features[0].path"][0]
    request["data"]["features"][0]["path"] = "s3://features/charges/"
    assert api.post("/api/v1/runs", data=json.dumps(request), content_type="application/json").status_code == 201
    assert Run.objects.get().spec["data"]["features"][0]["path"] == "s3://features/charges/"


@pytest.mark.slow
def test_the_demo_uploads_its_charges_to_s3_and_trains_from_there(s3, settings, tmp_path):
    from django.core.management import call_command

    out = io.StringIO()

    call_command("demo", "--rows", "8000", "--s3", "s3://features/demo", stdout=out)

    listed = s3.list_objects_v2(Bucket="features", Prefix="demo/charges/date=")["KeyCount"]
    assert f"Uploaded {listed} daily files to s3://features/demo/charges/" in out.getvalue()
    run = Run.objects.get(request__data__features__0__source="s3")
    source = run.request["data"]["features"][0]
    assert (source["source"], source["path"], source["date_column"]) == ("s3", "s3://features/demo/charges/", "date")
    Run.objects.exclude(pk=run.pk).delete()  # only the S3 run matters here
    run = wait_for_terminal(run, worker.reconcile)
    assert run.status == "succeeded", run.failure_reason


def test_the_columns_of_a_partitioned_s3_dataset_include_its_partitions(s3, partitioned, client, alice):
    client.force_login(alice)
    body = client.get("/sources/columns", {"source": "s3", "format": "parquet", "path": "s3://features/charges/"})
    columns = [(c["name"], c["type"]) for c in body.json()["columns"]]
    assert columns[0] == ("date", "partition")
    assert ("amount", "double") in columns
