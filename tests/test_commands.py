"""Management commands: API tokens, the workflow catalogue, the demo."""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from training import images
from training.models import ApiToken, Run, Workflow


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_api_token_prints_a_new_token_and_nothing_else(alice, client):
    first = run_command("create_api_token", "alice").removesuffix("\n")
    second = run_command("create_api_token", "alice").removesuffix("\n")

    assert first != second
    for key in (first, second):
        response = client.get("/api/v1/runs", HTTP_AUTHORIZATION=f"Token {key}")
        assert response.status_code == 200


def test_api_tokens_are_stored_only_as_hashes(alice, client):
    key = run_command("create_api_token", "alice", "--name", "ci").removesuffix("\n")

    token = ApiToken.objects.get(user=alice)
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert (token.name, token.prefix) == ("ci", key[:10])
    stored = [str(value) for value in ApiToken.objects.values_list().get()]
    assert not any(key in value for value in stored)
    assert client.get("/api/v1/runs", HTTP_AUTHORIZATION=f"Token {key}x").status_code == 401


def test_the_admin_never_shows_an_api_token(alice, charlie, client):
    key = run_command("create_api_token", "alice").removesuffix("\n")
    client.force_login(charlie)
    token = ApiToken.objects.get(user=alice)

    pages = [client.get("/admin/training/apitoken/"), client.get(f"/admin/training/apitoken/{token.pk}/change/")]

    for page in pages:
        assert page.status_code == 200
        assert key[:10] in page.content.decode()
        assert key not in page.content.decode()
        assert token.key_hash not in page.content.decode()


def test_create_api_token_names_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user named 'mallory'"):
        run_command("create_api_token", "mallory")


def test_sync_workflows_reads_the_installed_trainer(db, catalogue):
    output = run_command("sync_workflows")
    assert output == f"railyard-trainer:0.1.0: {len(catalogue)} workflow(s) available, 0 retired.\n"
    regression = Workflow.objects.get(name="gradient_boosting_regressor")
    assert (regression.task, regression.is_available) == ("regression", True)


def test_sync_workflows_skips_a_package_that_cannot_be_imported_and_keeps_the_rest(
    db, catalogue, tmp_path, monkeypatch
):
    # A distribution whose entry point names a module that is not there, found by importlib.metadata
    # on the trainer's path as an installed package would be.
    info = tmp_path / "broken_workflows-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-workflows\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[railyard.workflows]\nbroken = broken_workflows.models:Broken\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    out, err = io.StringIO(), io.StringIO()

    call_command("sync_workflows", stdout=out, stderr=err)

    assert out.getvalue() == f"railyard-trainer:0.1.0: {len(catalogue)} workflow(s) available, 0 retired.\n"
    assert "warning: workflow 'broken' skipped: broken_workflows.models:Broken cannot be imported: " in err.getvalue()
    assert "No module named 'broken_workflows'" in err.getvalue()
    assert not Workflow.objects.filter(name="broken").exists()
    assert Workflow.objects.filter(is_available=True).count() == len(catalogue)


def test_sync_workflows_retires_workflows_that_are_gone(db, catalogue):
    images.sync(images.DEFAULT, catalogue)
    synced, retired = images.sync(images.DEFAULT, [w for w in catalogue if w["name"] != "random_forest"])
    assert (synced, retired) == (len(catalogue) - 1, 1)
    assert not Workflow.objects.get(name="random_forest").is_available


def test_the_demo_writes_data_creates_a_login_and_submits_one_run(db, railyard_dirs):
    output = run_command("demo", "--rows", "3000")
    again = run_command("demo", "--rows", "3000")

    charges = pd.read_parquet(railyard_dirs / "data" / "demo" / "charges.parquet")
    assert len(charges) == 3000
    assert {"created_at", "amount", "country", "merchant_id", "card_type", "is_fraud"} <= set(charges.columns)
    assert charges["created_at"].max() - charges["created_at"].min() > pd.Timedelta(days=360)
    assert 0.002 < charges["is_fraud"].mean() < 0.05
    assert "as demo / railyard-demo" in output
    assert "submitted earlier" in again
    run = Run.objects.get()
    assert (run.owner.username, run.status, run.project.name) == ("demo", "queued", "fraud")


def test_the_demo_login_cannot_open_the_admin(db, client, django_user_model):
    django_user_model.objects.create_user("demo", password="x", is_staff=True, is_superuser=True)  # an older demo

    run_command("demo", "--rows", "1000", "--no-run")

    demo_user = django_user_model.objects.get(username="demo")
    assert (demo_user.is_staff, demo_user.is_superuser) == (False, False)
    client.force_login(demo_user)
    assert client.get("/admin/").status_code == 302
