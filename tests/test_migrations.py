"""Migrations that move data: rows written before a change read right after it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_JOBS = [("training", "0004_leases")]
WITH_JOBS = [("training", "0006_remove_run_job_handle")]


def migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def back_to_the_latest():
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_launched_runs_get_a_job_for_their_attempt_and_their_artifacts_keep_their_folder():
    old = migrate(BEFORE_JOBS)
    User = old.get_model("auth", "User")
    Project = old.get_model("training", "Project")
    Workflow = old.get_model("training", "Workflow")
    Run = old.get_model("training", "Run")
    Artifact = old.get_model("training", "Artifact")
    owner = User.objects.create(username="alice")
    project = Project.objects.create(name="fraud")
    workflow = Workflow.objects.create(name="gradient_boosting", task="binary")

    def run(status: str, handle: dict, attempt: int = 1):
        return Run.objects.create(
            owner=owner,
            user="alice",
            project=project,
            workflow=workflow,
            compute_resource="cpu",
            request={},
            status=status,
            executor="kubernetes",
            job_handle=handle,
            attempt=attempt,
            artifact_uri="file:///srv/runs/1",
        )

    queued = run("queued", {})
    in_flight = run("running", {"job": "railyard-run-2-1", "namespace": "railyard", "uid": "u"})
    finished = run("succeeded", {"job": "railyard-run-3-2"}, attempt=2)
    refused = run("failed", {})
    Artifact.objects.create(
        run=finished, name="model.joblib", uri="file:///srv/runs/3/model.joblib", size=1, sha256="0", content_type="x"
    )

    new = migrate(WITH_JOBS)
    Job = new.get_model("training", "Job")
    Artifact = new.get_model("training", "Artifact")

    assert not Job.objects.filter(runs__pk__in=[queued.pk, refused.pk]).exists()
    running_job = Job.objects.get(runs__pk=in_flight.pk)
    assert (running_job.status, running_job.attempt, running_job.executor) == ("running", 1, "kubernetes")
    assert running_job.handle["job"] == "railyard-run-2-1"  # the Job made before keeps its name
    finished_job = Job.objects.get(runs__pk=finished.pk)
    assert (finished_job.status, finished_job.attempt) == ("succeeded", 2)
    model = Artifact.objects.get(run_id=finished.pk)
    assert model.attempt == 2
    assert model.uri == "file:///srv/runs/3/model.joblib"


def test_whoever_owns_a_projects_runs_or_models_becomes_its_maintainer():
    old = migrate([("training", "0011_segments_and_compositions")])
    User = old.get_model("auth", "User")
    Project = old.get_model("training", "Project")
    Run = old.get_model("training", "Run")
    Model = old.get_model("training", "Model")
    alice, bob, charlie = (User.objects.create(username=name) for name in ("alice", "bob", "charlie"))
    fraud, churn = Project.objects.create(name="fraud"), Project.objects.create(name="churn")
    for owner, project in ((alice, fraud), (alice, fraud), (bob, churn)):
        Run.objects.create(owner=owner, user=owner.username, project=project, compute_resource="cpu", request={})
    Model.objects.create(name="churn-weekly", project=churn, owner=charlie, request={}, metric="roc_auc")

    new = migrate([("training", "0012_teams")])
    Membership = new.get_model("training", "Membership")

    held = sorted(Membership.objects.values_list("project__name", "user__username", "role"))
    assert held == [
        ("churn", "bob", "maintainer"),
        ("churn", "charlie", "maintainer"),
        ("fraud", "alice", "maintainer"),
    ]
