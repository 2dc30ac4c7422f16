"""Visibility goes through one seam, `training.access`: a project's members see it, by role; nobody else
does, on any way in (the API, the pages, the admin, compositions)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Permission, User
from rest_framework.test import APIClient

from tests.conftest import train_in_process
from tests.test_launch_form import form_data
from training import access, services
from training.models import ApiToken, AuditEntry, Membership, Project, Role, Run

pytestmark = pytest.mark.usefixtures("workflows")


def token_client(user, **limits) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user, 'test', **limits)[1]}")
    return client


@pytest.fixture
def two_teams(alice, bob, fraud_request):
    """alice's fraud run and bob's churn run: two teams on one Railyard."""
    mine = train_in_process(alice, fraud_request)
    theirs = train_in_process(bob, {**fraud_request, "project": "churn"})
    return mine, theirs


def test_whoever_names_a_new_project_maintains_it_and_nobody_else_sees_it(alice, bob, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    assert Membership.objects.get(project=run.project).role == Role.MAINTAINER
    assert list(access.runs_for(alice)) == [run]
    assert list(access.runs_for(bob)) == []
    assert list(access.runs_for(AnonymousUser())) == []
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.project) == ("alice", "project_created", run.project)


def test_two_teams_see_only_their_own_runs_through_the_api(two_teams, alice, bob):
    mine, theirs = two_teams
    api = token_client(alice)
    assert [r["id"] for r in api.get("/api/v1/runs").json()["results"]] == [mine.pk]
    assert [r["id"] for r in api.get("/api/v1/runs", {"project": "churn"}).json()["results"]] == []
    for path in ("", "/logs", "/artifacts/model.joblib"):
        assert api.get(f"/api/v1/runs/{theirs.pk}{path}").status_code == 404, path
        assert api.get(f"/api/v1/runs/{mine.pk}{path}").status_code == 200, path
    assert api.post(f"/api/v1/runs/{theirs.pk}/retry").status_code == 404
    assert api.post(f"/api/v1/runs/{theirs.pk}/cancel").status_code == 404
    assert [p["name"] for p in api.get("/api/v1/projects").json()] == ["fraud"]


def test_a_viewer_sees_but_cannot_act_and_is_told_why(two_teams, alice, bob):
    mine, _ = two_teams
    Membership.objects.create(project=mine.project, user=bob, role=Role.VIEWER)
    api = token_client(bob)
    assert api.get(f"/api/v1/runs/{mine.pk}").status_code == 200
    refused = api.post(f"/api/v1/runs/{mine.pk}/retry")
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "Project fraud: to launch, cancel and retry runs and edit schedules takes the member role (you are a viewer)."
    )
    launch = api.post("/api/v1/runs", {**mine.request}, format="json")
    assert launch.status_code == 403
    assert "takes the member role" in launch.json()["detail"]


def test_a_request_naming_a_project_one_may_not_create_is_a_400(settings, alice, bob, fraud_request):
    settings.RAILYARD = {**settings.RAILYARD, "ANYONE_CREATES_PROJECTS": False}
    refused = token_client(bob).post("/api/v1/runs", {**fraud_request, "project": "brand-new"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"]["project"] == ["There is no project named 'brand-new', and you may not create one."]
    assert token_client(bob).post("/api/v1/projects", {"name": "brand-new"}, format="json").status_code == 403
    bob.user_permissions.add(Permission.objects.get(codename="add_project"))
    bob = User.objects.get(pk=bob.pk)  # permissions are cached on the instance
    created = token_client(bob).post("/api/v1/runs", {**fraud_request, "project": "brand-new"}, format="json")
    assert created.status_code == 201
    assert access.role_in(bob, Project.objects.get(name="brand-new")) == Role.MAINTAINER


def test_the_launch_page_says_when_the_project_is_not_yours(client, alice, bob, fraud_request, dataset):
    services.submit(alice, fraud_request)
    client.force_login(bob)
    response = client.post("/runs/new", form_data(dataset))
    assert response.status_code == 400
    assert "takes the member role (you are not a member)" in response.content.decode()
    assert Run.objects.count() == 1


def test_the_pages_show_only_ones_projects(client, two_teams, alice):
    mine, theirs = two_teams
    client.force_login(alice)
    assert client.get(f"/runs/{theirs.pk}").status_code == 404
    assert client.get(f"/runs/{theirs.pk}/live").status_code == 404
    assert client.get(f"/runs/new?clone={theirs.pk}").status_code == 404
    assert client.post(f"/runs/{theirs.pk}/retry").status_code == 404
    listed = client.get("/").content.decode()
    assert f"/runs/{mine.pk}" in listed
    assert f"/runs/{theirs.pk}" not in listed
    assert client.get(f"/runs/statuses?ids={theirs.pk},{mine.pk}").json() == {str(mine.pk): "succeeded"}
    assert client.get(f"/compare?runs={theirs.pk}&runs={mine.pk}").status_code == 302  # one run: nothing to compare
    assert client.get("/projects/churn").status_code == 404
    projects = client.get("/projects").content.decode()
    assert "/projects/fraud" in projects
    assert "/projects/churn" not in projects


def test_the_admin_shows_staff_only_their_projects_and_operators_everything(client, charlie, two_teams, alice):
    mine, theirs = two_teams
    alice.is_staff = True
    alice.save()
    alice.user_permissions.add(*Permission.objects.filter(content_type__app_label="training"))
    client.force_login(alice)
    runs = client.get("/admin/training/run/").content.decode()
    assert f"/admin/training/run/{mine.pk}/change/" in runs
    assert f"/admin/training/run/{theirs.pk}/change/" not in runs
    jobs = client.get("/admin/training/job/").content.decode()
    assert f"/admin/training/job/{mine.current_job().pk}/change/" in jobs
    assert f"/admin/training/job/{theirs.current_job().pk}/change/" not in jobs
    assert "churn" not in client.get("/admin/training/project/").content.decode()
    assert client.get(f"/admin/training/run/{theirs.pk}/change/", follow=True).redirect_chain  # not found
    audit = client.get("/admin/training/auditentry/").content.decode()
    assert "fraud" in audit
    assert "churn" not in audit  # bob's project's entries are bob's
    assert client.get("/admin/training/auditentry/add/").status_code == 403  # the trail is never written by hand
    client.force_login(charlie)
    runs = client.get("/admin/training/run/").content.decode()
    assert f"/admin/training/run/{theirs.pk}/change/" in runs
    assert f"/admin/training/run/{mine.pk}/change/" in runs


def test_a_composition_may_name_only_runs_its_sender_sees(two_teams, alice):
    mine, theirs = two_teams
    request = {
        "project": "fraud",
        "data": mine.request["data"],
        "compose": {"members": [mine.pk, theirs.pk], "method": "mean"},
    }
    refused = token_client(alice).post("/api/v1/runs", request, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"]["compose.members[1]"] == [f"No run {theirs.pk} that you may see."]


def test_a_project_limited_token_reaches_only_its_project(two_teams, alice, bob, fraud_request):
    mine, _ = two_teams
    services.submit(alice, {**fraud_request, "project": "payments"})
    limited = token_client(alice, project=mine.project)
    assert {r["project"] for r in limited.get("/api/v1/runs").json()["results"]} == {"fraud"}
    assert [p["name"] for p in limited.get("/api/v1/projects").json()] == ["fraud"]
    refused = limited.post("/api/v1/runs", {**fraud_request, "project": "payments"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This API token reaches only project fraud."
    assert limited.post("/api/v1/runs", fraud_request, format="json").status_code == 201
