"""API tokens: several per user, named, limited to a project or to reading, expiring, revocable; only
their hashes are stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from training import services
from training.models import ApiToken, AuditEntry, hash_token

pytestmark = pytest.mark.usefixtures("workflows")


def with_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_it_issues_a_named_limited_token_and_shows_its_key_once(api, alice, fraud_request):
    services.submit(alice, fraud_request)
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    body = {"name": "nightly", "project": "fraud", "read_only": True, "expires_at": expires.isoformat()}
    made = api.post("/api/v1/tokens", body, format="json")
    assert made.status_code == 201
    answer = made.json()
    assert answer["key"].startswith("ry_")
    assert (answer["name"], answer["project"], answer["read_only"]) == ("nightly", "fraud", True)
    token = ApiToken.objects.get(pk=answer["id"])
    assert token.key_hash == hash_token(answer["key"])  # only the hash is kept
    assert token.expires_at == expires
    listed = {t["id"]: t for t in api.get("/api/v1/tokens").json()}
    assert "key" not in listed[answer["id"]]
    assert listed[answer["id"]]["last_used_at"] is None
    assert with_key(answer["key"]).get("/api/v1/runs").status_code == 200
    assert ApiToken.objects.get(pk=answer["id"]).last_used_at is not None
    entry = AuditEntry.objects.get(action="token_created")
    assert (entry.actor, entry.project.name, entry.target) == ("alice", "fraud", f"token {token.prefix} (nightly)")


def test_it_names_each_bad_field(api):
    refused = api.post(
        "/api/v1/tokens",
        {"name": "", "project": "nowhere", "read_only": "yes", "expires_at": "2001-01-01T00:00:00Z", "scope": "x"},
        format="json",
    )
    assert refused.status_code == 400
    # The body's shape first: unknown fields and missing ones, all at once.
    assert refused.json()["errors"] == {"scope": ["Unknown field."], "name": ["This field is required."]}
    refused = api.post(
        "/api/v1/tokens",
        {"name": " ", "project": "nowhere", "read_only": "yes", "expires_at": "2001-01-01T00:00:00Z"},
        format="json",
    )
    errors = refused.json()["errors"]
    assert set(errors) == {"name", "project", "read_only", "expires_at"}
    assert errors["project"] == ["You belong to no project named 'nowhere'."]
    assert errors["expires_at"] == ["Must be in the future."]


def test_a_revoked_or_expired_token_is_a_401(api, alice):
    _, key = ApiToken.issue(alice, "short-lived", expires_at=timezone.now() + timedelta(hours=1))
    client = with_key(key)
    assert client.get("/api/v1/runs").status_code == 200
    ApiToken.objects.filter(key_hash=hash_token(key)).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = client.get("/api/v1/runs")
    assert expired.status_code == 401
    assert expired.json()["detail"] == "This token has expired."

    made = api.post("/api/v1/tokens", {"name": "to revoke"}, format="json").json()
    assert with_key(made["key"]).get("/api/v1/runs").status_code == 200
    assert api.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
    assert with_key(made["key"]).get("/api/v1/runs").status_code == 401
    assert AuditEntry.objects.filter(action="token_revoked", actor="alice").count() == 1


def test_a_read_only_token_cannot_launch_or_widen_itself(alice, fraud_request):
    services.submit(alice, fraud_request)
    reader = with_key(ApiToken.issue(alice, "reader", read_only=True)[1])
    assert reader.get("/api/v1/runs").status_code == 200
    launch = reader.post("/api/v1/runs", fraud_request, format="json")
    assert launch.status_code == 403
    assert launch.json()["detail"] == "This API token is read-only."
    assert reader.post("/api/v1/tokens", {"name": "wider"}, format="json").status_code == 403
    assert ApiToken.objects.count() == 1


def test_a_project_token_cannot_issue_or_revoke_tokens(alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    limited = with_key(ApiToken.issue(alice, "fraud only", project=run.project)[1])
    refused = limited.post("/api/v1/tokens", {"name": "everything"}, format="json")
    assert refused.status_code == 403
    assert "cannot issue or revoke tokens" in refused.json()["detail"]
    other = ApiToken.issue(alice, "another")[0]
    assert limited.delete(f"/api/v1/tokens/{other.pk}").status_code == 403
    assert ApiToken.objects.filter(pk=other.pk).exists()


def test_no_one_sees_or_revokes_anothers_tokens(api, bob):
    theirs = ApiToken.issue(bob, "bob's")[0]
    assert all(t["id"] != theirs.pk for t in api.get("/api/v1/tokens").json())
    assert api.delete(f"/api/v1/tokens/{theirs.pk}").status_code == 404
    assert ApiToken.objects.filter(pk=theirs.pk).exists()


def test_the_tokens_page_makes_shows_once_and_revokes(client, alice):
    client.force_login(alice)
    made = client.post("/tokens", {"name": "from the page", "read_only": "1", "expires_at": "2099-01-01"})
    page = made.content.decode()
    key = page.split('<code class="key">')[1].split("</code>")[0]
    token = ApiToken.objects.get(key_hash=hash_token(key))
    assert (token.name, token.read_only, token.expires_at.year) == ("from the page", True, 2099)
    again = client.get("/tokens").content.decode()
    assert key not in again
    assert token.prefix in again
    assert client.post(f"/tokens/{token.pk}/revoke").status_code == 302
    assert not ApiToken.objects.filter(pk=token.pk).exists()
