"""`file` sources are read only under the data roots, in every entry point: the request, "Read columns"
and the trainer. A refusal never says whether the file exists."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from railyard_trainer import sources
from railyard_trainer.errors import BadDataError
from railyard_trainer.paths import ROOTS_ENV, PathNotAllowed, allowed_file
from railyard_trainer.spec import FeatureSource
from training.models import Run

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def data_dir(settings, railyard_dirs, dataset, monkeypatch) -> Path:
    """Only the test's data directory is a root; the shared dataset is copied into it."""
    data = railyard_dirs / "data"
    for path in dataset.values():
        shutil.copy(path, data / path.name)
    settings.RAILYARD = {**settings.RAILYARD, "DATA_ROOTS": [data]}
    monkeypatch.setenv(ROOTS_ENV, str(data))
    return data


@pytest.fixture
def outside() -> Path:
    """A real parquet file outside every root."""
    directory = Path(tempfile.mkdtemp(prefix="railyard-outside-"))
    yield directory
    shutil.rmtree(directory)


def escapes(data_dir: Path, outside: Path, dataset) -> dict[str, str]:
    shutil.copy(dataset["charges"], outside / "charges.parquet")
    (data_dir / "link.parquet").symlink_to(outside / "charges.parquet")
    (data_dir / "linked-dir").symlink_to(outside, target_is_directory=True)
    return {
        "absolute path outside": str(outside / "charges.parquet"),
        "dot-dot out of the root": os.path.relpath(outside / "charges.parquet", data_dir),
        "symlink to a file outside": "link.parquet",
        "symlink to a folder outside": "linked-dir/charges.parquet",
        "process environment": "/proc/self/environ",
        "password hashes": "/etc/shadow",
        "missing file outside": str(outside / "missing.parquet"),
    }


def refusal_of(raw: str, data_dir: Path) -> str:
    return f"{raw!r} is not a file Railyard may read: file sources must lie under a data root ({data_dir})."


def test_a_request_naming_a_file_outside_the_roots_is_refused_alike(api, data_dir, outside, dataset, fraud_request):
    for case, path in escapes(data_dir, outside, dataset).items():
        fraud_request["data"]["features"][0]["path"] = path

        response = api.post("/api/v1/runs", data=json.dumps(fraud_request), content_type="application/json")

        assert response.status_code == 400, case
        assert response.json()["errors"]["data.features[0].path"] == [refusal_of(path, data_dir)], case
    assert Run.objects.count() == 0


def test_a_request_inside_the_roots_is_resolved_to_its_real_path(api, data_dir, fraud_request):
    (data_dir / "current.parquet").symlink_to(data_dir / "charges.parquet")
    fraud_request["data"]["features"][0]["path"] = "current.parquet"
    fraud_request["data"]["features"][1]["path"] = str(data_dir / "merchants.parquet")

    response = api.post("/api/v1/runs", data=json.dumps(fraud_request), content_type="application/json")

    assert response.status_code == 201, response.json()
    spec = Run.objects.get().spec
    assert spec["data"]["features"][0]["path"] == str(data_dir / "charges.parquet")


def test_read_columns_never_parses_a_file_outside_the_roots(client, alice, data_dir, outside, dataset, settings):
    client.force_login(alice)
    for case, path in escapes(data_dir, outside, dataset).items():
        response = client.get("/sources/columns", {"source": "file", "format": "csv", "path": path})

        assert response.status_code == 400, case
        assert response.json() == {"error": refusal_of(path, data_dir)}, case
        assert settings.SECRET_KEY not in response.content.decode()

    inside = client.get("/sources/columns", {"source": "file", "format": "parquet", "path": "charges.parquet"})
    assert "amount" in [c["name"] for c in inside.json()["columns"]]


def test_the_trainer_refuses_a_spec_naming_a_file_outside_its_roots(data_dir, outside, dataset):
    for case, path in escapes(data_dir, outside, dataset).items():
        source = FeatureSource(names=["amount"], source="file", format="parquet", path=path)

        with pytest.raises(PathNotAllowed) as refused:
            sources.read_source(source, "data.features[0]")

        assert str(refused.value) == f"data.features[0]: {refusal_of(path, data_dir)}", case
        assert isinstance(refused.value, BadDataError)  # so the run fails as bad data, and is not retried


def test_a_symlink_swapped_after_validation_is_refused_by_the_trainer(data_dir, outside, dataset):
    link = data_dir / "today.parquet"
    link.symlink_to(data_dir / "charges.parquet")
    source = FeatureSource(names=["amount"], source="file", format="parquet", path=str(link))
    assert len(sources.read_source(source, "data.features[0]")) > 0

    shutil.copy(dataset["charges"], outside / "charges.parquet")
    link.unlink()
    link.symlink_to(outside / "charges.parquet")

    with pytest.raises(PathNotAllowed):
        sources.read_source(source, "data.features[0]")


def test_kernel_and_device_files_are_never_readable_even_under_a_root():
    for path in ("/proc/self/environ", "/sys/kernel/hostname", "/dev/zero", "/proc/1/../self/status"):
        with pytest.raises(PathNotAllowed):
            allowed_file(path, [Path("/")])
    assert allowed_file("/etc/hostname", [Path("/")]) == Path("/etc/hostname")


def test_without_roots_a_trainer_reads_no_file(monkeypatch, dataset):
    monkeypatch.delenv(ROOTS_ENV)
    source = FeatureSource(names=["amount"], source="file", format="parquet", path=str(dataset["charges"]))

    with pytest.raises(PathNotAllowed, match="none are configured; set RAILYARD_DATA_ROOTS"):
        sources.read_source(source, "data.features[0]")
