"""Each team's workflow image: a second trainer (here a virtualenv, as the local executor runs one)
registers a workflow the default image lacks, a project adopts it, and its runs train in it — on this
machine, and as Jobs of that image on the test cluster. Two projects may each have a workflow of the
same name."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.conftest import wait_for_terminal
from training import images, services, worker
from training.models import ApiToken, AuditEntry, Membership, Project, Role, Run, Workflow

pytestmark = [pytest.mark.usefixtures("workflows")]
TEAM_IMAGE = "registry.example.com/churn/trainer:1"

WORKFLOW = """
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from railyard_trainer.workflows import Workflow
from railyard_trainer.workflows.builtin import ordinal_preprocessor


class {cls}(Workflow):
    name = "{name}"
    task = "classification"
    description = "{description}"
    default_params = {{"learning_rate": 0.2}}

    def train(self, training_dataframe, holdout_dataframe):
        params = {{**self.default_params, **self.custom_params}}
        model = Pipeline(
            [
                ("preprocess", ordinal_preprocessor(training_dataframe, self.classifier_features)),
                ("model", HistGradientBoostingClassifier(max_iter=30, **params)),
            ]
        )
        return model.fit(training_dataframe[self.classifier_features], training_dataframe[self.label])
"""


def make_image(root: Path, package: str, workflows: dict[str, str]) -> list[str]:
    """A virtualenv holding Railyard's trainer (through a .pth to this one's packages) and a team's
    package whose entry points name `workflows` (name → description); returns its trainer command."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    site = next((root / "lib").glob("python3*/site-packages"))
    # Its own packages, and (as FROM the trainer image) Railyard's, with their own .pth files.
    (site / "railyard.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    classes = {name: "".join(part.title() for part in name.split("_")) for name in workflows}
    (site / f"{package}.py").write_text(
        "".join(WORKFLOW.format(cls=classes[n], name=n, description=d) for n, d in workflows.items())
    )
    info = site / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    points = "".join(f"{name} = {package}:{cls}\n" for name, cls in classes.items())
    (info / "entry_points.txt").write_text(f"[railyard.workflows]\n{points}")
    return [str(root / "bin" / "python"), "-m", "railyard_trainer"]


@pytest.fixture
def team_image(tmp_path, settings) -> list[str]:
    command = make_image(tmp_path / "churn-venv", "churn_workflows", {"churn_boost": "Churn, the team's way."})
    settings.RAILYARD = {**settings.RAILYARD, "LOCAL_IMAGES": {TEAM_IMAGE: command}}
    return command


def as_user(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user)[1]}")
    return client


def churn_request(fraud_request: dict, workflow: str = "churn_boost") -> dict:
    request = {**fraud_request, "project": "churn"}
    request["train"] = {**fraud_request["train"], "workflow_name": workflow, "custom_params": {}}
    return request


def test_the_trainer_lists_its_workflows_as_json(team_image):
    listed = subprocess.run([*team_image, "workflows", "--json"], capture_output=True, text=True, timeout=120)
    names = {entry["name"] for entry in json.loads(listed.stdout)}
    assert {"churn_boost", "gradient_boosting"} <= names  # built FROM the trainer: its own and Railyard's


def test_sync_workflows_registers_an_images_catalogue(team_image, db):
    from django.core.management import call_command

    call_command("sync_workflows", "--image", TEAM_IMAGE, verbosity=0)
    mine = Workflow.objects.get(image=TEAM_IMAGE, name="churn_boost")
    assert (mine.task, mine.description, mine.default_params) == (
        "classification",
        "Churn, the team's way.",
        {"learning_rate": 0.2},
    )
    assert not Workflow.objects.filter(image=images.DEFAULT, name="churn_boost").exists()
    assert Workflow.objects.filter(image=TEAM_IMAGE, name="gradient_boosting").exists()


def test_an_image_with_no_local_trainer_is_refused_saying_how_to_add_one(alice, fraud_request):
    api = as_user(alice)
    api.post("/api/v1/projects", {"name": "churn"}, format="json")
    refused = api.put("/api/v1/projects/churn/image", {"image": "registry.example.com/unknown:1"}, format="json")
    assert refused.status_code == 400
    assert "add it to RAILYARD_LOCAL_IMAGES" in refused.json()["errors"]["image"][0]
    assert Project.objects.get(name="churn").trainer_image == ""


def test_a_projects_own_image_trains_its_workflow_on_this_machine(
    team_image, alice, bob, fraud_request, settings, enqueue_only
):
    api = as_user(alice)
    api.post("/api/v1/projects", {"name": "churn"}, format="json")
    unknown = api.post("/api/v1/runs", churn_request(fraud_request), format="json")
    assert unknown.status_code == 400  # the default image has no churn_boost
    assert "train.workflow_name" in unknown.json()["errors"]

    adopted = api.put("/api/v1/projects/churn/image", {"image": TEAM_IMAGE}, format="json")
    assert adopted.status_code == 200, adopted.json()
    assert "churn_boost" in adopted.json()["workflows"]
    assert [w["name"] for w in api.get("/api/v1/workflows", {"project": "churn"}).json()].count("churn_boost") == 1
    assert AuditEntry.objects.filter(action="image_set", target=TEAM_IMAGE).exists()
    assert "churn_boost" not in [w["name"] for w in as_user(bob).get("/api/v1/workflows").json()]  # not bob's

    made = api.post("/api/v1/runs", churn_request(fraud_request), format="json")
    assert made.status_code == 201, made.json()
    run = Run.objects.get(pk=made.json()["id"])
    assert run.workflow.image == TEAM_IMAGE
    worker.reconcile()
    run = wait_for_terminal(run, worker.reconcile)
    assert run.status == "succeeded", run.failure_reason
    assert 0.5 < run.metrics["roc_auc"] <= 1
    job = run.current_job()
    assert worker.job_inputs(job, run, worker.get_executor("local")).image == TEAM_IMAGE


def test_two_projects_may_each_have_a_workflow_of_the_same_name(tmp_path, settings, alice, bob, fraud_request):
    other_image = "registry.example.com/fraud/trainer:7"
    churn = make_image(tmp_path / "a", "team_a", {"house_model": "Team A's house model."})
    fraud = make_image(tmp_path / "b", "team_b", {"house_model": "Team B's house model."})
    settings.RAILYARD = {**settings.RAILYARD, "LOCAL_IMAGES": {TEAM_IMAGE: churn, other_image: fraud}}
    alice_api, bob_api = as_user(alice), as_user(bob)
    alice_api.post("/api/v1/projects", {"name": "churn"}, format="json")
    bob_api.post("/api/v1/projects", {"name": "payments"}, format="json")
    assert alice_api.put("/api/v1/projects/churn/image", {"image": TEAM_IMAGE}, format="json").status_code == 200
    assert bob_api.put("/api/v1/projects/payments/image", {"image": other_image}, format="json").status_code == 200

    mine = services.submit(alice, churn_request(fraud_request, "house_model"))[0]
    theirs = services.submit(bob, {**churn_request(fraud_request, "house_model"), "project": "payments"})[0]
    assert (mine.workflow.image, mine.workflow.description) == (TEAM_IMAGE, "Team A's house model.")
    assert (theirs.workflow.image, theirs.workflow.description) == (other_image, "Team B's house model.")


@pytest.mark.slow
def test_on_the_cluster_the_catalogue_is_read_by_a_job_and_runs_use_the_image(
    cluster, team_image, alice, fraud_request
):
    cluster.images = {TEAM_IMAGE: team_image[0]}  # the test cluster runs that image's python
    synced, _, _ = images.register(TEAM_IMAGE)
    assert synced >= 1
    assert Workflow.objects.filter(image=TEAM_IMAGE, name="churn_boost", is_available=True).exists()
    assert not [name for name in cluster.objects("jobs") if name.startswith("railyard-catalogue-")]  # removed

    project = Project.objects.create(name="churn", trainer_image=TEAM_IMAGE)
    Membership.objects.create(project=project, user=alice, role=Role.MAINTAINER)
    run = services.submit(alice, churn_request(fraud_request))[0]
    worker.reconcile()
    run = wait_for_terminal(run, worker.reconcile)
    assert run.status == "succeeded", run.failure_reason
    job = cluster.job(run.current_job().handle["job"])
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == TEAM_IMAGE
