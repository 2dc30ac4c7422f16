"""A run submitted over HTTP, launched by the worker, trained by the real trainer subprocess."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from django.conf import settings
from sklearn.metrics import roc_auc_score

from tests.conftest import launched, wait_for_terminal
from tests.workers import start_worker, worker_env
from training import worker
from training.models import ApiToken, Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def expected_rows(charges: Path) -> tuple[int, int]:
    """Training and holdout rows of the demo request, computed from the data itself."""
    frame = pd.read_parquet(charges)
    frame = frame[(frame["amount"] >= 1) & frame["is_fraud"].notna()]
    train = frame[(frame["created_at"] >= "2025-11-01") & (frame["created_at"] < "2026-10-01")]
    holdout = frame[(frame["created_at"] >= "2026-10-01") & (frame["created_at"] < "2026-11-01")]
    return len(train), len(holdout)


def submit_over_http(live_server, token: str, request: dict) -> int:
    response = requests.post(
        f"{live_server.url}/api/v1/runs", json=request, headers={"Authorization": f"Token {token}"}, timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_it_trains_evaluates_and_stores_a_run(live_server, alice, workflows, fraud_request, dataset):
    _, token = ApiToken.issue(alice)
    run = Run.objects.get(pk=submit_over_http(live_server, token, fraud_request))

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert [e.new_status for e in run.events.all()] == ["queued", "submitted", "running", "succeeded"]
    store_dir = Path(run.artifact_uri.removeprefix("file://"))
    scores = pd.read_parquet(store_dir / "holdout_scores.parquet")
    assert run.metrics["roc_auc"] == pytest.approx(roc_auc_score(scores["label"], scores["score"]), abs=1e-12)
    train_rows, holdout_rows = expected_rows(dataset["charges"])
    assert run.data_summary["train_rows"] == train_rows
    assert run.data_summary["holdout_rows"] == holdout_rows == len(scores)
    assert scores["created_at"].min() >= pd.Timestamp("2026-10-01")
    artifacts = {a.name: a for a in run.artifacts.all()}
    assert set(artifacts) == {
        "spec.json",
        "model.joblib",
        "metadata.json",
        "metrics.json",
        "evaluation.json",
        "holdout_scores.parquet",
        "log.txt",
    }
    log = (store_dir / "log.txt").read_text()
    assert "stage=serialize done" in log

    detail = requests.get(
        f"{live_server.url}/api/v1/runs/{run.pk}", headers={"Authorization": f"Token {token}"}, timeout=30
    ).json()
    download = next(a for a in detail["artifacts"] if a["name"] == "holdout_scores.parquet")
    fetched = requests.get(download["download_url"], headers={"Authorization": f"Token {token}"}, timeout=30)
    assert fetched.status_code == 200
    assert pd.read_parquet(io.BytesIO(fetched.content)).equals(scores)
    assert requests.get(download["download_url"], timeout=30).status_code == 401
    logs = requests.get(
        f"{live_server.url}/api/v1/runs/{run.pk}/logs?tail=3", headers={"Authorization": f"Token {token}"}, timeout=30
    ).json()
    assert logs["log"].count("\n") == 3
    assert "finished" in logs["log"]


def test_it_fails_a_run_whose_data_cannot_train_with_the_trainers_reason(alice, workflows, fraud_request):
    from training import services

    fraud_request["data"]["filters"].append({"feature_name": "amount", "predicate": "Gt", "feature_value": 10**9})
    run, _ = services.submit(alice, fraud_request)

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "failed"
    assert run.failure_reason.startswith("bad data: no rows left after applying the date range and filters")
    assert {"log.txt", "error.json", "spec.json"} <= set(run.artifacts.values_list("name", flat=True))


def test_a_run_whose_artifact_changed_after_the_trainer_wrote_it_fails(alice, workflows, fraud_request):
    from railyard_trainer import train
    from railyard_trainer.storage import open_store
    from training import services

    run, _ = services.submit(alice, fraud_request)
    job = launched(run)
    train.run(run.spec, open_store(run.artifact_uri))
    model = Path(run.artifact_uri.removeprefix("file://")) / "model.joblib"
    model.write_bytes(model.read_bytes()[:-10])  # cut short

    worker.finish_succeeded(job, run)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.failure_reason == "artifact model.joblib does not match its recorded size and sha256"


def test_the_worker_process_runs_a_submitted_run_and_stops_on_sigterm(
    live_server, alice, workflows, fraud_request, tmp_path
):
    process = start_worker(tmp_path)
    try:
        run = Run.objects.get(pk=submit_over_http(live_server, ApiToken.issue(alice)[1], fraud_request))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not run.state.is_terminal:
            time.sleep(0.3)
            run.refresh_from_db()
        assert run.status == "succeeded", (run.failure_reason, (tmp_path / "worker.log").read_text())
        assert run.metrics["roc_auc"] > 0.5
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, (tmp_path / "worker.log").read_text()


def live_members(group: int) -> list[str]:
    """The processes of a process group that are still running (zombies left to init do not count)."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            state, _, pgrp = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == group and state != "Z":
            members.append(entry.name)
    return members


@pytest.mark.django_db(transaction=True)
def test_the_worker_exits_when_its_whole_process_group_gets_sigterm(tmp_path):
    """systemd and Kubernetes signal every process of the group, the task cluster's too."""
    process = start_worker(tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "worker reconciling" not in (tmp_path / "worker.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        assert len(live_members(process.pid)) >= 4  # the worker, the sentinel, its task workers, …

        os.killpg(process.pid, signal.SIGTERM)
        code = process.wait(timeout=30)  # the grace systemd and Kubernetes give before SIGKILL
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert code == 0, (tmp_path / "worker.log").read_text()
    assert "worker stopped" in (tmp_path / "worker.log").read_text()
    deadline = time.monotonic() + 30
    while live_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live_members(process.pid) == []


def test_run_local_serves_the_dashboard_and_stops_with_its_worker_on_ctrl_c(db, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "run_local.log", "w+")  # noqa: SIM115 - read after the process ends
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_local", f"127.0.0.1:{port}"],
        cwd=settings.BASE_DIR,
        env=worker_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).text == "ok":
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise AssertionError((tmp_path / "run_local.log").read_text())
        children = [int(p) for p in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
        assert len(children) == 2  # the web server and the worker
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []  # run_local waited for both
    assert "Railyard stopped." in (tmp_path / "run_local.log").read_text()


def test_run_local_on_a_busy_port_stops_its_worker_and_fails(db, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_local", f"127.0.0.1:{port}"],
            cwd=settings.BASE_DIR,
            env=worker_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: whatever it leaves behind is found there
        )
        try:
            output, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0, output
    assert "That port is already in use" in output
    assert "the web server stopped with exit code 1" in output
    deadline = time.monotonic() + 30
    while live_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live_members(process.pid) == []  # no worker left running
