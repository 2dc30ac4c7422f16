"""What data a run read, and whether a retry, a clone or a requeue read the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import launched, train_in_process
from training import provenance, services, states, worker
from training.models import Run

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def own_data(fraud_request, railyard_dirs) -> dict:
    """The demo request on a copy of the dataset this test may change."""
    folder = railyard_dirs / "data" / "own"
    folder.mkdir()
    for source in fraud_request["data"]["features"]:
        copied = folder / Path(source["path"]).name
        shutil.copy(source["path"], copied)
        source["path"] = str(copied)
    return fraud_request


def train_again(run: Run) -> Run:
    """Train the run's current attempt in this process and finish it as the worker would."""
    from railyard_trainer import train
    from railyard_trainer.storage import open_store

    job = launched(run, running=True)
    train.run(run.spec, open_store(run.artifact_uri))
    assert worker.finish_succeeded(job, Run.objects.get(pk=run.pk))
    run.refresh_from_db()
    return run


def test_a_run_records_what_it_read_of_each_source(alice, own_data):
    run = train_in_process(alice, own_data)

    charges, merchants = run.data_summary["sources"]
    path = Path(own_data["data"]["features"][0]["path"])
    assert charges["path"] == str(path)
    assert charges["size"] == path.stat().st_size
    assert charges["modified"].startswith(str(pd.Timestamp(path.stat().st_mtime, unit="s").date()))
    assert charges["rows"] == len(pd.read_parquet(path))
    assert len(charges["fingerprint"]) == 64
    assert merchants["rows"] == len(pd.read_parquet(own_data["data"]["features"][1]["path"]))


def test_a_retry_after_the_data_changed_says_how_in_an_event_the_api_and_the_page(alice, api, own_data, client):
    original = train_in_process(alice, own_data)
    path = Path(own_data["data"]["features"][0]["path"])
    charges = pd.read_parquet(path)
    charges.iloc[:-500].to_parquet(path)  # the source lost its last 500 rows

    retry = train_again(services.retry(original, alice))

    changes = retry.data_summary["data_changes"]
    assert retry.data_summary["data_compared_with"] == f"run {original.pk}"
    assert len(changes) == 1
    assert changes[0].startswith(f"data.features[0] ({path}): ")
    assert f"rows {len(charges)} → {len(charges) - 500}" in changes[0]
    event = retry.events.get(new_status="succeeded")
    assert event.reason.startswith(f"trainer finished; the data differs from run {original.pk}'s: data.features[0]")
    detail = api.get(f"/api/v1/runs/{retry.pk}").json()
    assert (detail["data_compared_with"], detail["data_changes"]) == (f"run {original.pk}", changes)
    client.force_login(alice)
    page = client.get(f"/runs/{retry.pk}").content.decode()
    assert f"The data differs from run {original.pk}'s:</strong>" in page
    assert f"<tr><td><code>{path}</code></td><td>{len(charges) - 500}</td>" in page  # what it read
    compared = client.get(f"/compare?runs={original.pk}&runs={retry.pk}").content.decode()
    assert 'id="data-diff"' in compared
    assert f"rows {len(charges)} → {len(charges) - 500}" in compared


def test_a_retry_on_the_same_data_says_so(alice, api, own_data):
    original = train_in_process(alice, own_data)

    retry = train_again(services.retry(original, alice))

    assert (retry.data_summary["data_compared_with"], retry.data_summary["data_changes"]) == (f"run {original.pk}", [])
    assert (
        retry.events.get(new_status="succeeded").reason
        == f"trainer finished; the data is the data of run {original.pk}"
    )


def test_a_clone_and_a_requeued_attempt_are_compared_too(alice, own_data, client):
    original = train_in_process(alice, own_data)
    client.force_login(alice)
    from training.forms import initial_from_request

    posted = {k: "" if v is None else str(v) for k, v in initial_from_request(original.request).items()}
    assert client.post(f"/runs/new?clone={original.pk}", posted).status_code == 302
    clone = Run.objects.exclude(pk=original.pk).get()
    assert clone.cloned_from == original
    path = Path(own_data["data"]["features"][1]["path"])
    merchants = pd.read_parquet(path)
    merchants.assign(merchant_age_days=merchants["merchant_age_days"] + 1).to_parquet(path)

    clone = train_again(clone)
    assert clone.data_summary["data_compared_with"] == f"run {original.pk}"
    assert [line.split(":")[0] for line in clone.data_summary["data_changes"]] == [f"data.features[1] ({path})"]

    assert states.requeue(clone, actor="charlie")
    requeued = train_again(Run.objects.get(pk=clone.pk))
    assert (requeued.attempt, requeued.data_summary["data_compared_with"]) == (2, "attempt 1")
    assert requeued.data_summary["data_changes"] == []


def test_changes_name_each_source_that_differs():
    before = [{"path": "a.parquet", "size": 10, "rows": 5, "fingerprint": "x"}, {"path": "b", "fingerprint": "y"}]
    after = [{"path": "a.parquet", "size": 12, "rows": 6, "fingerprint": "z"}]

    assert provenance.changes(before, after) == [
        "data.features[0] (a.parquet): bytes 10 → 12; rows 5 → 6",
        "data.features[1]: no longer read",
    ]
    assert provenance.changes(before, before) == []
