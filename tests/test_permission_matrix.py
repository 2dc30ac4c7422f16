"""The permission matrix: every route of the URL configuration, with every method it answers, asked by
every kind of caller — a project's maintainer, member and viewer, an outsider, an operator, a read-only
token, a token of another project and nobody — and what each must get.

The routes come from the URL configuration: a route this table does not describe fails the test, so a
new route cannot be added without saying who may use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from railyard_trainer.vocabulary import RunKind
from tests.conftest import train_in_process
from tests.retraining import sliding
from training import services, webhooks
from training.models import ApiToken, Membership, Model, Project, Role, Run, Schedule, Webhook
from training.retraining import services as retraining

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("workflows", "enqueue_only")]

PERSONAS = (
    "maintainer",
    "member",
    "viewer",
    "outsider",
    "operator",
    "read_only_token",
    "other_project_token",
    "anonymous",
)
#: What each caller may do in project `fraud`, by role rank (None: nothing, it is not theirs).
LEVEL = {
    "maintainer": 2,
    "member": 1,
    "viewer": 0,
    "outsider": None,
    "operator": 2,
    "read_only_token": 0,  # its user maintains fraud, but the token only reads
    "other_project_token": None,  # its user maintains fraud, but the token reaches only churn
    "anonymous": None,
}
RANK = {"viewer": 0, "member": 1, "maintainer": 2}
OK, LOGIN = "ok", "login"
counter = itertools.count()


@dataclass
class World:
    run: Run
    segmented: Run
    model: Model
    schedule: Schedule
    webhook: Webhook
    request: dict
    users: dict[str, User]
    tokens: dict[str, str] = field(default_factory=dict)

    def queued_run(self) -> Run:
        return services.submit(self.users["maintainer"], self.request)[0]

    def fresh_member(self) -> str:
        user = User.objects.create_user(f"zed{next(counter)}")
        Membership.objects.create(project=self.run.project, user=user, role=Role.VIEWER)
        return user.username

    def fresh_hook(self) -> int:
        url = "https://hooks.example.com/railyard"
        return webhooks.create(self.users["maintainer"], {"project": "fraud", "url": url, "events": ["run.failed"]}).pk

    def fresh_token(self) -> int:
        return ApiToken.issue(self.users["maintainer"], "to revoke")[0].pk


@dataclass
class Route:
    """One method of one route: who needs what, how to fill the URL, what to send.

    `need`: public, signed-in, unlimited (signed in, no limited token), owner (alice's own token),
    or a role in `fraud`. `kind`: object (a 404 when unseen, a 403 when the role is short), list (what
    it shows is checked instead), create (names the project: a 403 when the role is short or absent).
    """

    name: str
    method: str
    need: str
    kwargs: Callable[[World], dict] = lambda world: {}
    body: Callable[[World], dict] | None = None
    query: Callable[[World], dict] = lambda world: {}
    kind: str = "object"
    #: Below the role the object is not shown at all (a 404): webhooks are their maintainers'.
    hidden_below: bool = False
    #: For lists: what must be shown to those who may see the project's objects, and only to them.
    shows: Callable[[World], str] | None = None


def run_id(world: World) -> dict:
    return {"pk": world.run.pk}


def fresh_run(world: World) -> dict:
    return {"pk": world.queued_run().pk}


def model_name(world: World) -> dict:
    return {"name": world.model.name}


def schedule_id(world: World) -> dict:
    return {"pk": world.schedule.pk}


def fraud(world: World) -> dict:
    return {"name": "fraud"}


def shows_run(world: World) -> str:
    return f'"id":{world.run.pk},'


def run_link(world: World) -> str:
    return f"/runs/{world.run.pk}"


API = [
    Route("api-runs", "GET", "viewer", kind="list", shows=shows_run),
    Route("api-runs", "POST", "member", body=lambda w: w.request, kind="create"),
    Route("api-run-detail", "GET", "viewer", run_id),
    Route("api-run-cancel", "POST", "member", fresh_run),
    Route("api-run-retry", "POST", "member", run_id),
    Route("api-run-logs", "GET", "viewer", run_id),
    Route("api-run-segments", "GET", "viewer", lambda w: {"pk": w.segmented.pk}),
    Route("api-run-artifact", "GET", "viewer", lambda w: {"pk": w.run.pk, "name": "model.joblib"}),
    Route("api-workflows", "GET", "signed-in"),
    Route("api-compute-resources", "GET", "signed-in"),
    Route("api-webhooks", "GET", "maintainer", kind="list", shows=lambda w: f'"id":{w.webhook.pk},'),
    Route(
        "api-webhooks",
        "POST",
        "maintainer",
        body=lambda w: {"project": "fraud", "url": "https://hooks.example.com/x", "events": ["run.failed"]},
        kind="create",
    ),
    Route("api-webhook-detail", "DELETE", "maintainer", lambda w: {"pk": w.fresh_hook()}, hidden_below=True),
    Route("api-webhook-deliveries", "GET", "maintainer", lambda w: {"pk": w.webhook.pk}, hidden_below=True),
    Route("api-models", "GET", "viewer", kind="list", shows=lambda w: f'"name":"{w.model.name}"'),
    Route(
        "api-models",
        "POST",
        "member",
        body=lambda w: {"name": f"m{next(counter)}", "project": "fraud", "request": sliding(w.request)},
        kind="create",
    ),
    Route("api-model-detail", "GET", "viewer", model_name),
    Route("api-model-detail", "PATCH", "member", model_name, body=lambda w: {"request": sliding(w.request)}),
    Route("api-model-runs", "GET", "viewer", model_name),
    Route("api-model-runs", "POST", "member", model_name, body=lambda w: {}),
    Route("api-model-schedules", "GET", "viewer", model_name),
    Route("api-model-schedules", "POST", "member", model_name, body=lambda w: {"cron": "0 3 * * *"}),
    Route("api-model-promote", "POST", "maintainer", model_name, body=lambda w: {"run": w.run.pk}),
    Route("api-model-reject", "POST", "maintainer", model_name, body=lambda w: {"run": w.run.pk}),
    Route("api-model-rollback", "POST", "maintainer", model_name, body=lambda w: {}),
    Route("api-schedule-detail", "GET", "viewer", schedule_id),
    Route("api-schedule-fires", "GET", "viewer", schedule_id),
    Route("api-schedule-pause", "POST", "member", schedule_id),
    Route("api-schedule-resume", "POST", "member", schedule_id),
    Route("api-schedule-fire", "POST", "member", schedule_id),
    Route(
        "api-schedule-backfill",
        "POST",
        "member",
        schedule_id,
        body=lambda w: {"start": "2026-01-01", "end": "2026-01-03", "dry_run": True},
    ),
    Route("api-projects", "GET", "viewer", kind="list", shows=lambda w: '"name":"fraud"'),
    Route("api-projects", "POST", "unlimited", body=lambda w: {"name": f"p{next(counter)}"}),
    Route("api-project-detail", "GET", "viewer", fraud),
    Route("api-project-image", "PUT", "maintainer", fraud, body=lambda w: {"image": ""}),
    Route("api-project-members", "POST", "maintainer", fraud, body=lambda w: {"username": "dora", "role": "viewer"}),
    Route("api-project-member", "DELETE", "maintainer", lambda w: {"name": "fraud", "username": w.fresh_member()}),
    Route("api-tokens", "GET", "signed-in"),
    Route("api-tokens", "POST", "unlimited", body=lambda w: {"name": "ci"}),
    Route("api-token-detail", "DELETE", "owner", lambda w: {"pk": w.fresh_token()}),
    Route("api-schema", "GET", "public"),
]

PAGES = [
    Route("runs", "GET", "viewer", kind="list", shows=run_link),
    Route("launch", "GET", "signed-in"),
    Route("run-detail", "GET", "viewer", run_id),
    Route("run-live", "GET", "viewer", run_id),
    Route(
        "run-statuses",
        "GET",
        "viewer",
        kind="list",
        query=lambda w: {"ids": w.run.pk},
        shows=lambda w: f'"{w.run.pk}":',
    ),
    Route("compare", "GET", "viewer", kind="list", query=lambda w: {"runs": [w.run.pk, w.queued_run().pk]}),
    Route("source-columns", "GET", "signed-in", query=lambda w: {"source": "file", "path": "nowhere.parquet"}),
    Route("workflows", "GET", "signed-in"),
    Route("workflow-detail", "GET", "signed-in", lambda w: {"name": "gradient_boosting"}),
    Route("models", "GET", "viewer", kind="list", shows=lambda w: f"/models/{w.model.name}"),
    Route("model-detail", "GET", "viewer", model_name),
    Route("model-retrain", "POST", "member", model_name),
    Route("model-add-schedule", "POST", "member", model_name, body=lambda w: {"cron": "0 4 * * *"}),
    Route("run-make-model", "POST", "member", run_id, body=lambda w: {"name": f"page{next(counter)}"}),
    Route("model-promote", "POST", "maintainer", model_name, body=lambda w: {"run": w.run.pk}),
    Route("model-reject", "POST", "maintainer", model_name, body=lambda w: {"run": w.run.pk}),
    Route("model-rollback", "POST", "maintainer", model_name),
    Route("schedule-pause", "POST", "member", schedule_id),
    Route("schedule-resume", "POST", "member", schedule_id),
    Route("schedule-fire", "POST", "member", schedule_id),
    Route("projects", "GET", "viewer", kind="list", shows=lambda w: "/projects/fraud"),
    Route("projects", "POST", "signed-in", body=lambda w: {"name": f"page{next(counter)}"}),
    Route("project-detail", "GET", "viewer", fraud),
    Route("project-set-member", "POST", "maintainer", fraud, body=lambda w: {"username": "dora", "role": "viewer"}),
    Route("project-remove-member", "POST", "maintainer", lambda w: {"name": "fraud", "username": w.fresh_member()}),
    Route("tokens", "GET", "signed-in"),
    Route("tokens", "POST", "signed-in", body=lambda w: {"name": "from the page"}),
    Route("token-revoke", "POST", "owner", lambda w: {"pk": w.fresh_token()}),
    Route("run-cancel", "POST", "member", fresh_run),
    Route("run-retry", "POST", "member", run_id),
    Route("login", "GET", "public"),
    Route("plotly-js", "GET", "public"),
    Route("healthz", "GET", "public"),
    Route("api-docs", "GET", "public"),
]
#: Routes outside the matrix, and why.
ELSEWHERE = {
    "logout": "signs the caller out (tests/test_pages.py)",
    "metrics": "a bearer of RAILYARD_METRICS_TOKEN, not a user (tests/test_metrics.py)",
}


def named_routes(patterns=None, prefix: str = "") -> dict[str, str]:
    """Every named route of the URL configuration but the admin's: name → pattern."""
    found = {}
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace != "admin":
                found.update(named_routes(entry.url_patterns, prefix + str(entry.pattern)))
        elif isinstance(entry, URLPattern) and entry.name:
            found[entry.name] = prefix + str(entry.pattern)
    return found


def methods_of(name: str) -> set[str]:
    """What an API route answers besides OPTIONS and HEAD."""
    from django.urls import resolve

    view = resolve(reverse(name, kwargs=_sample_kwargs(name))).func
    cls = getattr(view, "cls", None)
    if cls is None:
        return set()
    return {m.upper() for m in cls.http_method_names if hasattr(cls, m) and m not in ("options", "head")}


def _sample_kwargs(name: str) -> dict:
    pattern = named_routes()[name]
    return {
        key: 1 if kind == "int" else "x"
        for kind, key in (part.split(":") for part in pattern.replace(">", "<").split("<")[1::2])
    }


def test_every_route_is_in_the_matrix():
    described = {route.name for route in API + PAGES} | set(ELSEWHERE)
    assert set(named_routes()) == described
    for name in {route.name for route in API}:
        answered = methods_of(name)
        assert answered == {route.method for route in API if route.name == name}, name


@pytest.fixture
def world(alice, bob, charlie, fraud_request) -> World:
    dora, eve = User.objects.create_user("dora"), User.objects.create_user("eve")
    run = train_in_process(alice, fraud_request)  # alice creates fraud: its maintainer
    project = run.project
    Membership.objects.create(project=project, user=bob, role=Role.MEMBER)
    Membership.objects.create(project=project, user=dora, role=Role.VIEWER)
    segmented = services.submit(alice, fraud_request)[0]
    Run.objects.filter(pk=segmented.pk).update(kind=RunKind.SEGMENTED)
    model = retraining.create_model(
        alice, {"name": "fraud-weekly", "project": "fraud", "request": sliding(fraud_request)}
    )
    Run.objects.filter(pk=run.pk).update(model=model)
    schedule = retraining.add_schedule(model, {"cron": "0 2 * * *"})
    hook = webhooks.create(alice, {"project": "fraud", "url": "https://hooks.example.com/a", "events": ["run.failed"]})
    churn = services.submit(alice, {**fraud_request, "project": "churn"})[0].project
    users = {"maintainer": alice, "member": bob, "viewer": dora, "outsider": eve, "operator": charlie}
    world = World(run, segmented, model, schedule, hook, fraud_request, users)
    world.tokens = {
        "read_only_token": ApiToken.issue(alice, "reader", read_only=True)[1],
        "other_project_token": ApiToken.issue(alice, "churn only", project=churn)[1],
    }
    assert Project.objects.filter(name__in=["fraud", "churn"]).count() == 2
    return world


def api_client(world: World, persona: str) -> APIClient:
    client = APIClient()
    if persona in world.users:
        client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(world.users[persona])[1]}")
    elif persona in world.tokens:
        client.credentials(HTTP_AUTHORIZATION=f"Token {world.tokens[persona]}")
    return client


def page_client(world: World, persona: str, client):
    if persona in world.users:
        client.force_login(world.users[persona])
    return client  # a token is not a session: its holder reaches the pages as nobody


def expected(route: Route, persona: str, is_api: bool) -> str | int:
    nobody = persona == "anonymous" or (persona.endswith("_token") and not is_api)
    if route.need == "public":
        return OK
    if nobody:
        return 401 if is_api else LOGIN
    if persona == "read_only_token" and route.method != "GET":
        return 403
    if route.need == "signed-in":
        return OK
    if route.need == "unlimited":
        return 403 if persona == "other_project_token" else OK
    if route.need == "owner":
        return OK if persona == "maintainer" else 403 if persona == "other_project_token" else 404
    level = LEVEL[persona]
    if route.kind == "list":
        return OK
    if level is None:
        return 403 if route.kind == "create" else 404
    if level < RANK[route.need]:
        return 404 if route.hidden_below else 403
    return OK


def outcome(response) -> str | int:
    if response.status_code in (401, 403, 404):
        return response.status_code
    if response.status_code == 302 and response["Location"].startswith(reverse("login")):
        return LOGIN
    return OK if response.status_code < 500 else response.status_code


def sees(route: Route, persona: str) -> bool:
    level = LEVEL[persona]
    if route.name == "api-webhooks":
        return level is not None and level >= RANK["maintainer"] and persona != "read_only_token"
    return level is not None


@pytest.mark.parametrize("persona", PERSONAS)
def test_each_caller_gets_what_their_role_allows_and_sees_nothing_else(world, persona, client):
    wrong = []
    for route, is_api in [(r, True) for r in API] + [(r, False) for r in PAGES]:
        url = reverse(route.name, kwargs=route.kwargs(world))
        query = route.query(world)
        body = route.body(world) if route.body else None
        if is_api:
            caller = api_client(world, persona)
            send = getattr(caller, route.method.lower())
            response = send(url, body, format="json") if route.method != "GET" else send(url, query)
        else:
            caller = page_client(world, persona, client.__class__())
            response = caller.get(url, query) if route.method == "GET" else caller.post(url, body or {})
        got, want = outcome(response), expected(route, persona, is_api)
        if got != want:
            wrong.append(f"{route.method} {url}: {got} (expected {want})")
        elif route.shows and got == OK:
            shown = route.shows(world) in response.content.decode()
            if shown != sees(route, persona):
                wrong.append(f"{route.method} {url}: {'shows' if shown else 'hides'} {route.shows(world)!r}")
    assert wrong == []
