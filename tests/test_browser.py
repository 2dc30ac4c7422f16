"""The dashboard in a real browser: headless Chromium driven by Playwright against a live server.

A thread runs the worker's real reconcile loop beside the server, so runs launched from the
page train in real trainer subprocesses. Every page visited is saved as a screenshot under
`test-results/screenshots/`.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from playwright.sync_api import Page, expect

from training import services, worker
from training.models import Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("workflows")]
SCREENSHOTS = Path(settings.BASE_DIR) / "test-results" / "screenshots"
SLEEPER = [sys.executable, "-c", "import time; print('stage=load started', flush=True); time.sleep(120)"]


@pytest.fixture
def background_worker():
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.is_set():
                worker.reconcile()
                stop.wait(0.3)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(30)


@pytest.fixture(autouse=True)
def obeys_the_content_security_policy(page: Page):
    """Every browser test fails if the page breaks its Content-Security-Policy (an inline script, say)."""
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    yield
    assert refused == []


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.fixture
def logged_in(page: Page, live_server, alice) -> Page:
    page.goto(f"{live_server.url}/login")
    shot(page, "login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    return page


def fill_launch_form(page: Page, dataset: dict, **overrides: str) -> None:
    values = {
        "Project": "fraud",
        "Model description": "launched from the browser",
        "Data path": str(dataset["charges"]),
        "Columns to load": "created_at, amount, country, card_type, card_present, is_fraud",
        "Date column": "created_at",
        "From": "2025-11-01",
        "Until (exclusive)": "2026-11-01",
        "Holdout start": "2026-10-01",
        "Holdout until (exclusive)": "2026-11-01",
        "Label": "is_fraud",
        "Classifier features": "amount, country, card_type, card_present",
        "Custom params": '{"max_iter": 20}',
        **overrides,
    }
    for label, value in values.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_label("Workflow").select_option("gradient_boosting")


def test_a_run_launched_from_the_form_is_followed_live_to_its_charts(
    logged_in, live_server, dataset, background_worker
):
    page = logged_in
    page.get_by_role("link", name="Launch a run").click()
    blank = {"Columns to load": "", "Date column": "", "Label": "", "Classifier features": ""}
    fill_launch_form(page, dataset, **blank)
    expect(page.locator("#workflow-info")).to_contain_text("Histogram gradient boosting")
    expect(page.locator("#workflow-info")).to_contain_text('"max_iter":100')
    page.get_by_role("button", name="Read columns").click()
    expect(page.locator("#columns-status")).to_have_text("9 columns.")
    page.get_by_label("Pick the label").select_option("is_fraud")
    page.get_by_label("Pick the date column").select_option("created_at")
    page.get_by_label("Pick the classifier features").select_option(["amount", "country", "card_type", "card_present"])
    expect(page.get_by_label("Columns to load")).to_have_value(
        "created_at, amount, country, card_type, card_present, is_fraud"
    )
    expect(page.get_by_label("Classifier features", exact=True)).to_have_value(
        "amount, country, card_type, card_present"
    )
    page.get_by_role("button", name="Add filter").click()
    page.get_by_label("Filter 1 column").select_option("amount")
    page.get_by_label("Filter 1 predicate").select_option("GtEq")
    page.get_by_label("Filter 1 value").fill("1")
    page.get_by_label("Filter 1 value").blur()
    expect(page.get_by_label("Filters", exact=True)).to_have_value(
        '[{"feature_name":"amount","predicate":"GtEq","feature_value":1}]'
    )
    shot(page, "launch")
    page.get_by_role("button", name="Launch").click()

    expect(page.get_by_role("heading", name=re.compile(r"Run #\d+"))).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    expect(page.locator("#status-badge")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#charts .main-svg").first).to_be_visible(timeout=20_000)
    assert page.evaluate("window.stillTheSamePage") is True  # followed without reloading
    assert page.locator("#charts .js-plotly-plot").count() == 6
    assert "ROC curve" in page.locator("#charts").text_content()
    expect(page.locator("#log")).to_contain_text("stage=serialize done")
    expect(page.locator("table.metrics")).to_contain_text("roc_auc")
    shot(page, "run-succeeded")
    run = Run.objects.get()
    assert (run.status, run.request["train"]["custom_params"]) == ("succeeded", {"max_iter": 20})
    assert run.request["train"]["classifier_features"] == ["amount", "country", "card_type", "card_present"]
    assert run.request["data"]["filters"] == [{"feature_name": "amount", "predicate": "GtEq", "feature_value": 1}]
    assert (run.request["train"]["label"], run.request["data"]["features"][0]["date_column"]) == (
        "is_fraud",
        "created_at",
    )


def test_a_form_error_appears_beside_its_field(logged_in, live_server, dataset):
    page = logged_in
    page.goto(f"{live_server.url}/runs/new")
    fill_launch_form(page, dataset, Label="is_fraudd")
    page.get_by_role("button", name="Launch").click()

    error = page.locator("#id_label-error")
    expect(error).to_have_text("'is_fraudd' is not among the feature sources' names.")
    expect(page.locator(".field.invalid #id_label")).to_be_visible()
    shot(page, "launch-error")
    assert Run.objects.count() == 0


def test_two_runs_are_compared_side_by_side(logged_in, live_server, alice, fraud_request, trained_run):
    from tests.conftest import train_in_process

    other = train_in_process(
        alice,
        {
            **fraud_request,
            "train": {**fraud_request["train"], "workflow_name": "logistic_regression", "custom_params": {}},
        },
    )
    page = logged_in
    page.goto(live_server.url)
    page.get_by_label(f"Compare run {trained_run.pk}").check()
    page.get_by_label(f"Compare run {other.pk}").check()
    page.get_by_role("button", name="Compare selected").click()

    expect(page.get_by_role("heading", name="Comparing 2 runs")).to_be_visible()
    expect(page.locator("#charts .main-svg").first).to_be_visible()
    assert page.locator("#charts .js-plotly-plot").count() == 3
    assert page.locator("td.best").count() >= 4
    expect(page.locator("table.diff")).to_contain_text("train.workflow_name")
    shot(page, "compare")


def test_a_run_is_cloned_with_a_changed_parameter(logged_in, live_server, trained_run):
    page = logged_in
    page.goto(f"{live_server.url}/runs/{trained_run.pk}")
    page.get_by_role("link", name="Clone").click()
    expect(page.get_by_label("Label", exact=True)).to_have_value("is_fraud")
    expect(page.locator("#column-picker")).to_be_hidden()  # until the columns were read
    page.get_by_role("button", name="Read columns").click()  # the request joins a second source
    expect(page.locator("#column-picker")).to_be_visible()
    page.get_by_label("Custom params").fill('{"max_iter": 7, "learning_rate": 0.2}')
    shot(page, "clone")
    page.get_by_role("button", name="Launch").click()

    expect(page.locator("#status-badge")).to_be_visible()
    clone = Run.objects.exclude(pk=trained_run.pk).get()
    original = trained_run.request
    assert clone.request["train"] == {**original["train"], "custom_params": {"max_iter": 7, "learning_rate": 0.2}}
    assert clone.request["data"]["features"][1] == original["data"]["features"][1]  # the joined source
    assert "merchant_id" in clone.request["data"]["features"][0]["names"]  # its join key stays
    assert clone.request["data"]["holdout_sampling"] == original["data"]["holdout_sampling"]


def test_a_running_run_is_cancelled_and_the_list_updates_itself(
    logged_in,
    live_server,
    alice,
    fraud_request,
    settings,
    background_worker,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from django_q.conf import Conf

    settings.RAILYARD = {**settings.RAILYARD, "TRAINER_COMMAND": SLEEPER}
    monkeypatch.setattr(Conf, "SYNC", True)  # stop tasks run at once, as the worker's cluster would run them
    run, _ = services.submit(alice, fraud_request)
    page = logged_in
    page.goto(f"{live_server.url}/runs/{run.pk}")
    expect(page.locator("#status-badge")).to_have_text("running", timeout=20_000)
    expect(page.locator("#stage-label")).to_have_text("load (0%)")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()

    expect(page.locator("#status-badge")).to_have_text("cancelled")
    shot(page, "run-cancelled")
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert (
        Path(run.current_job().handle["work_dir"]) / "exit.json"
    ).read_text() == '{"exit_code": -15}'  # trainer stopped

    other, _ = services.submit(alice, fraud_request)
    page.goto(live_server.url)
    row = page.locator(f'tr[data-run-id="{other.pk}"] .badge')
    expect(row).to_have_text("running", timeout=20_000)  # queued when the page loaded
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel(Run.objects.get(pk=other.pk), actor="alice")
    expect(row).to_have_text("cancelled", timeout=10_000)
    shot(page, "runs")


def test_pages_fit_a_phone_screen(page: Page, live_server, alice, trained_run):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password")
    page.get_by_label("Password").press("Enter")  # the keyboard alone logs in
    for name, path in (("phone-runs", "/"), ("phone-run", f"/runs/{trained_run.pk}"), ("phone-launch", "/runs/new")):
        page.goto(live_server.url + path)
        expect(page.locator("main")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
        shot(page, name)


def test_runs_are_compared_with_the_keyboard_alone(logged_in, live_server, alice, fraud_request):
    first = services.submit(alice, fraud_request)[0]
    second = services.submit(alice, fraud_request)[0]
    page = logged_in
    page.goto(live_server.url)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for run in (first, second):
        page.get_by_label(f"Compare run {run.pk}").focus()
        page.keyboard.press("Space")
    page.get_by_role("button", name="Compare selected").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Comparing 2 runs")).to_be_visible()
    expect(page.get_by_role("link", name=f"#{first.pk}", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=f"#{second.pk}", exact=True)).to_be_visible()


def test_a_models_page_draws_its_retrains_and_pauses_and_resumes_a_schedule(
    logged_in, live_server, alice, fraud_request
):
    from datetime import UTC, datetime

    from tests.retraining import make_model
    from training.retraining import champions
    from training.retraining import services as retraining

    model = make_model(alice, fraud_request)
    for day, score in ((2, 0.80), (3, 0.83), (4, 0.82)):
        run = retraining.retrain(model, alice, datetime(2026, 11, day, 3, tzinfo=UTC))
        Run.objects.filter(pk=run.pk).update(status="succeeded", metrics={"roc_auc": score})
        run.refresh_from_db()
        if day == 2:
            champions.challenger_succeeded(run)
    retraining.add_schedule(model, {"cron": "0 3 * * *", "timezone": "Europe/Dublin"})

    page = logged_in
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("link", name="fraud-daily")).to_be_visible()
    expect(page.locator("svg.sparkline polyline")).to_have_count(1)
    shot(page, "models")
    page.get_by_role("link", name="fraud-daily").click()
    expect(page.locator("#charts .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#charts .legend")).to_contain_text("champion")
    expect(page.locator("ol.fire-times li")).to_have_count(5)
    expect(page.locator("ol.fire-times li").first).to_contain_text("Europe/Dublin")
    shot(page, "model")
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text("On resume it would fire")).to_be_visible()
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    page.get_by_label("Cron").fill("30 9 * * 1")
    page.get_by_label("Timezone").fill("America/New_York")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("heading", name="30 9 * * 1 in America/New_York")).to_be_visible()
    expect(page.locator("ol.fire-times")).to_have_count(2)
    shot(page, "model-schedules")


def test_a_segmented_requests_page_sorts_searches_and_charts_its_segments(
    logged_in, live_server, alice, tmp_path, background_worker
):
    from training.demo import segmented_request, write_segmented

    data = write_segmented(tmp_path / "data" / "merchants.parquet", merchants=8, own=3, rows=1200)
    parent = services.submit(alice, segmented_request(data, jobs=2))[0]
    deadline = time.monotonic() + 600
    while not parent.state.is_terminal and time.monotonic() < deadline:
        time.sleep(0.5)
        parent.refresh_from_db()
    assert parent.status == "succeeded", parent.failure_reason

    page = logged_in
    page.goto(f"{live_server.url}/runs/{parent.pk}")
    expect(page.locator("#routed-counts")).to_contain_text("3 served by their own model")
    expect(page.locator("#segment-table tbody tr")).to_have_count(11)  # eight merchants and three small ones
    expect(page.locator("#charts .js-plotly-plot").first).to_be_visible()
    expect(page.locator("#charts").first).to_contain_text("segment model minus generic model")
    expect(page.locator("#segment-table tbody tr").first).to_contain_text("segment")  # the default: winners first
    shot(page, "segments")
    page.locator("#segments").screenshot(path=SCREENSHOTS / "segment-table.png")
    page.get_by_role("link", name="Segment", exact=True).click()
    expect(page.locator("#segment-table tbody tr").first).to_contain_text("m00")
    page.get_by_label("Segment").fill("s")
    page.get_by_label("Served by").select_option("generic")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#segment-table tbody tr")).to_have_count(3)
    expect(page.locator("#segment-table")).to_contain_text("too small")
    page.goto(f"{live_server.url}/runs/{parent.pk}")
    page.get_by_role("link", name="m00").click()
    expect(page.locator("#parent-run")).to_contain_text(f"run #{parent.pk}")
    expect(page.locator("#versus-generic")).to_contain_text("segment model serves it")
    shot(page, "segment-run")


def test_a_team_is_made_a_member_added_and_a_token_issued_and_revoked_from_the_pages(logged_in, live_server, bob):
    page = logged_in
    page.goto(f"{live_server.url}/projects")
    page.get_by_label("Name").fill("churn")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Project churn")).to_be_visible()
    page.locator("#add-member").get_by_label("Username").fill("bob")
    page.locator("#add-member").get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Save").click()
    members = page.locator("#members table")
    expect(members).to_contain_text("bob")
    expect(members).to_contain_text("viewer")
    expect(page.locator("#audit")).to_contain_text("added member")
    shot(page, "project-team")

    page.get_by_role("link", name="Tokens").click()
    page.locator("#new-token").get_by_label("Name").fill("nightly export")
    page.locator("#new-token").get_by_label("Project").select_option("churn")
    page.get_by_label("Read-only").check()
    page.get_by_role("button", name="Make token").click()
    key = page.locator("code.key").inner_text()
    assert key.startswith("ry_")
    row = page.get_by_role("row").filter(has_text="nightly export")
    expect(row).to_contain_text("churn")
    expect(row).to_contain_text("read-only")
    shot(page, "tokens")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Token nightly export revoked.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="nightly export")).to_have_count(0)
