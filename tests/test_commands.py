"""Management commands: API tokens, the workflow catalogue, the demo."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from training.management.commands.sync_workflows import sync
from training.models import Run, Workflow


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_api_token_prints_the_token_and_nothing_else(alice):
    first = run_command("create_api_token", "alice")
    second = run_command("create_api_token", "alice")
    assert first == second == Token.objects.get(user=alice).key + "\n"


def test_create_api_token_names_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user named 'mallory'"):
        run_command("create_api_token", "mallory")


def test_sync_workflows_reads_the_installed_trainer(db, catalogue):
    output = run_command("sync_workflows")
    assert output == f"{len(catalogue)} workflow(s) available, 0 retired.\n"
    regression = Workflow.objects.get(name="gradient_boosting_regressor")
    assert (regression.task, regression.is_available) == ("regression", True)


def test_sync_workflows_retires_workflows_that_are_gone(db, catalogue):
    sync(catalogue)
    synced, retired = sync([w for w in catalogue if w["name"] != "random_forest"])
    assert (synced, retired) == (len(catalogue) - 1, 1)
    assert not Workflow.objects.get(name="random_forest").is_available


def test_the_demo_writes_data_creates_a_login_and_submits_one_run(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"

    output = run_command("demo", "--rows", "3000")
    again = run_command("demo", "--rows", "3000")

    charges = pd.read_parquet(tmp_path / "var" / "demo" / "charges.parquet")
    assert len(charges) == 3000
    assert {"created_at", "amount", "country", "merchant_id", "card_type", "is_fraud"} <= set(charges.columns)
    assert charges["created_at"].max() - charges["created_at"].min() > pd.Timedelta(days=360)
    assert 0.002 < charges["is_fraud"].mean() < 0.05
    assert "as demo / railyard-demo" in output
    assert "submitted earlier" in again
    run = Run.objects.get()
    assert (run.owner.username, run.status, run.project.name) == ("demo", "queued", "fraud")
