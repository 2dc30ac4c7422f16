"""How often a caller may ask: the API per token and, for nobody, per address; sign-ins stop being
checked after repeated failures, on the dashboard and in the admin alike."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from training.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"token": "3/minute", "anon": "2/minute"})


def with_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_each_token_has_its_own_budget(low_rates, alice):
    first, second = with_key(ApiToken.issue(alice)[1]), with_key(ApiToken.issue(alice)[1])
    assert [first.get("/api/v1/workflows").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert "Retry-After" in first.get("/api/v1/workflows")
    assert second.get("/api/v1/workflows").status_code == 200


def test_nobody_is_counted_per_address(low_rates):
    here, there = APIClient(REMOTE_ADDR="10.0.0.1"), APIClient(REMOTE_ADDR="10.0.0.2")
    assert [here.get("/api/v1/runs").status_code for _ in range(3)] == [401, 401, 429]
    assert there.get("/api/v1/runs").status_code == 401


def sign_in(client: Client, path: str, username: str, password: str) -> str:
    return client.post(path, {"username": username, "password": password}).content.decode()


@pytest.mark.parametrize("path", ["/login", "/admin/login/"])
def test_failed_sign_ins_lock_the_name_and_the_address_for_a_while(settings, path, charlie):
    settings.SIGN_IN_FAILURES = 3
    client = Client(REMOTE_ADDR="10.0.0.9")
    for _ in range(3):
        assert "Too many failed sign-ins" not in sign_in(client, path, "charlie", "guess")
    locked = sign_in(client, path, "charlie", "charlie-password")  # right, but too late
    assert "Too many failed sign-ins: wait 15 minutes and try again." in locked
    assert "_auth_user_id" not in client.session
    elsewhere = Client(REMOTE_ADDR="10.0.0.10")
    assert "Too many failed sign-ins" in sign_in(elsewhere, path, "charlie", "charlie-password")  # the name
    assert "Too many failed sign-ins" in sign_in(client, path, "someone-else", "x")  # the address
    fresh = Client(REMOTE_ADDR="10.0.0.11")
    sign_in(fresh, path, "alice-or-nobody", "x")
    assert "Too many failed sign-ins" not in sign_in(fresh, path, "another", "x")


def test_guessed_tokens_are_counted_per_address(low_rates):
    guesser = APIClient(REMOTE_ADDR="10.0.0.3")
    guesser.credentials(HTTP_AUTHORIZATION="Token ry_guess")
    assert [guesser.get("/api/v1/runs").status_code for _ in range(3)] == [401, 401, 429]
