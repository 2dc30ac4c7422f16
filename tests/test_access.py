"""Visibility goes through one seam, `training.access`: narrow it, and every way in narrows with it."""

from __future__ import annotations

import pytest

from training import access
from training.models import Run

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def hidden_and_shown(monkeypatch, alice, fraud_request):
    """Two trained runs, and a seam that shows only the second: what the teams issue will do per project."""
    from tests.conftest import train_in_process

    hidden, shown = train_in_process(alice, fraud_request), train_in_process(alice, fraud_request)
    runs_for, jobs_for, artifacts_for = access.runs_for, access.jobs_for, access.artifacts_for
    monkeypatch.setattr(access, "runs_for", lambda user: runs_for(user).exclude(pk=hidden.pk))
    assert (access.jobs_for, access.artifacts_for) == (jobs_for, artifacts_for)  # they ask runs_for
    return hidden, shown


def test_everyone_signed_in_sees_every_run_and_nobody_else_any(alice, charlie, fraud_request):
    from django.contrib.auth.models import AnonymousUser

    from training import services

    run = services.submit(alice, fraud_request)[0]
    assert list(access.runs_for(charlie)) == [run]
    assert list(access.runs_for(AnonymousUser())) == []


def test_the_api_asks_the_seam_for_lists_runs_logs_and_artifacts(api, hidden_and_shown):
    hidden, shown = hidden_and_shown
    assert [r["id"] for r in api.get("/api/v1/runs").json()["results"]] == [shown.pk]
    for path in ("", "/logs", "/artifacts/model.joblib"):
        assert api.get(f"/api/v1/runs/{hidden.pk}{path}").status_code == 404, path
        assert api.get(f"/api/v1/runs/{shown.pk}{path}").status_code == 200, path
    assert api.post(f"/api/v1/runs/{hidden.pk}/retry").status_code == 404
    assert api.post(f"/api/v1/runs/{hidden.pk}/cancel").status_code == 404


def test_the_pages_ask_the_seam(client, alice, hidden_and_shown):
    hidden, shown = hidden_and_shown
    client.force_login(alice)
    assert client.get(f"/runs/{hidden.pk}").status_code == 404
    assert client.get(f"/runs/{hidden.pk}/live").status_code == 404
    assert client.get(f"/runs/new?clone={hidden.pk}").status_code == 404
    assert client.post(f"/runs/{hidden.pk}/retry").status_code == 404
    listed = client.get("/").content.decode()
    assert f"/runs/{shown.pk}" in listed
    assert f"/runs/{hidden.pk}" not in listed
    assert client.get(f"/runs/statuses?ids={hidden.pk},{shown.pk}").json() == {str(shown.pk): "succeeded"}
    compared = client.get(f"/compare?runs={hidden.pk}&runs={shown.pk}")
    assert compared.status_code == 302  # one run left: nothing to compare
    project = client.get(f"/projects/{shown.project.name}").content.decode()
    assert f"/runs/{hidden.pk}" not in project


def test_the_admin_asks_the_seam(client, charlie, hidden_and_shown):
    hidden, shown = hidden_and_shown
    client.force_login(charlie)
    assert client.get(f"/admin/training/run/{hidden.pk}/change/", follow=True).redirect_chain  # not found
    runs = client.get("/admin/training/run/").content.decode()
    assert f"/admin/training/run/{shown.pk}/change/" in runs
    assert f"/admin/training/run/{hidden.pk}/change/" not in runs
    jobs = client.get("/admin/training/job/").content.decode()
    assert f"/admin/training/job/{shown.current_job().pk}/change/" in jobs
    assert f"/admin/training/job/{hidden.current_job().pk}/change/" not in jobs
    assert Run.objects.count() == 2
