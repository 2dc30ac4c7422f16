"""Projects and their members: creating one, adding, changing and removing members, and the audit trail
each change leaves."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from training.models import ApiToken, AuditEntry, Membership, Role


def as_user(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user)[1]}")
    return client


@pytest.fixture
def fraud(api):
    made = api.post("/api/v1/projects", {"name": "fraud"}, format="json")
    assert made.status_code == 201
    return made.json()


def test_whoever_creates_a_project_maintains_it(fraud, api):
    assert fraud["name"] == "fraud"
    assert fraud["role"] == "maintainer"
    assert [(m["username"], m["role"]) for m in fraud["members"]] == [("alice", "maintainer")]
    assert api.get("/api/v1/projects").json() == [
        {"name": "fraud", "created_at": fraud["created_at"], "role": "maintainer", "trainer_image": ""}
    ]


def test_a_project_name_is_checked(api, fraud):
    taken = api.post("/api/v1/projects", {"name": "fraud"}, format="json")
    assert taken.status_code == 400
    assert taken.json()["errors"]["name"] == ["A project named 'fraud' exists already."]
    bad = api.post("/api/v1/projects", {"name": "no spaces"}, format="json")
    assert "name" in bad.json()["errors"]
    assert api.post("/api/v1/projects", {"title": "x"}, format="json").json()["errors"] == {
        "title": ["Unknown field."],
        "name": ["This field is required."],
    }


def test_a_maintainer_adds_changes_and_removes_members(api, fraud, alice, bob):
    added = api.post("/api/v1/projects/fraud/members", {"username": "bob", "role": "viewer"}, format="json")
    assert added.status_code == 201
    assert added.json()["role"] == "viewer"
    detail = as_user(bob).get("/api/v1/projects/fraud").json()
    assert detail["role"] == "viewer"
    changed = api.post("/api/v1/projects/fraud/members", {"username": "bob", "role": "member"}, format="json")
    assert changed.status_code == 200
    assert Membership.objects.get(user=bob).role == Role.MEMBER
    assert api.delete("/api/v1/projects/fraud/members/bob").status_code == 204
    assert as_user(bob).get("/api/v1/projects/fraud").status_code == 404
    assert api.delete("/api/v1/projects/fraud/members/bob").status_code == 404
    trail = list(AuditEntry.objects.filter(project__name="fraud").order_by("id").values_list("action", "target"))
    assert trail == [
        ("project_created", "fraud"),
        ("member_added", "bob"),
        ("member_changed", "bob"),
        ("member_removed", "bob"),
    ]


def test_a_member_cannot_manage_members(api, fraud, bob, charlie):
    api.post("/api/v1/projects/fraud/members", {"username": "bob", "role": "member"}, format="json")
    refused = as_user(bob).post(
        "/api/v1/projects/fraud/members", {"username": "charlie", "role": "viewer"}, format="json"
    )
    assert refused.status_code == 403
    assert "takes the maintainer role (you are a member)" in refused.json()["detail"]


def test_the_last_maintainer_stays_one(api, fraud, bob):
    demoted = api.post("/api/v1/projects/fraud/members", {"username": "alice", "role": "member"}, format="json")
    assert demoted.status_code == 400
    assert demoted.json()["errors"]["role"] == ["alice is the last maintainer of fraud; add another first."]
    assert api.delete("/api/v1/projects/fraud/members/alice").status_code == 400
    api.post("/api/v1/projects/fraud/members", {"username": "bob", "role": "maintainer"}, format="json")
    assert api.delete("/api/v1/projects/fraud/members/alice").status_code == 204


def test_unknown_users_and_roles_are_named(api, fraud):
    refused = api.post("/api/v1/projects/fraud/members", {"username": "nobody", "role": "owner"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"role": ["Must be one of viewer, member, maintainer."]}
    refused = api.post("/api/v1/projects/fraud/members", {"username": "nobody", "role": "viewer"}, format="json")
    assert refused.json()["errors"] == {"username": ["There is no user named 'nobody'."]}


def test_the_project_page_manages_members_and_shows_the_audit_trail(client, fraud, alice, bob):
    client.force_login(alice)
    client.post("/projects/fraud/members", {"username": "bob", "role": "member"})
    page = client.get("/projects/fraud").content.decode()
    assert 'id="add-member"' in page
    assert "added member" in page
    assert "bob" in page
    client.force_login(bob)
    theirs = client.get("/projects/fraud").content.decode()
    assert 'id="add-member"' not in theirs  # members see the team, maintainers change it
    assert client.post("/projects/fraud/members", {"username": "bob", "role": "maintainer"}).status_code == 403
    assert Membership.objects.get(user=bob).role == Role.MEMBER


def test_a_project_is_created_from_the_projects_page(client, bob):
    client.force_login(bob)
    response = client.post("/projects", {"name": "churn"})
    assert response["Location"] == "/projects/churn"
    assert Membership.objects.get(project__name="churn").user == bob
