"""Webhooks: a project's subscribers (or everyone's, for a webhook of no project) told when runs end,
champions move, challengers are turned down and a model keeps failing.

- Events are recorded as `Delivery` rows in the same transaction as what they report (an outbox):
  nothing is told that did not happen, and nothing that happened goes untold.
- The worker sends them from a thread of its own (`deliver_due`), each signed the way Stripe signs:
  `Railyard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the secret>`.
- A receiver that fails is retried with exponential backoff up to MAX_ATTEMPTS; every attempt is
  logged with its response code. Sending never holds up training: no transition waits on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from railyard_trainer.body import InvalidRequest, check_json
from railyard_trainer.schema import is_slug
from railyard_trainer.vocabulary import RunStatus
from training import access
from training.models import Delivery, Model, Promotion, Role, Run, Webhook

log = logging.getLogger("training.webhooks")

RUN_SUCCEEDED, RUN_FAILED = "run.succeeded", "run.failed"
MODEL_PROMOTED, MODEL_REJECTED, MODEL_FAILING = "model.promoted", "model.rejected", "model.failing"
EVENTS = (RUN_SUCCEEDED, RUN_FAILED, MODEL_PROMOTED, MODEL_REJECTED, MODEL_FAILING)
SIGNATURE_HEADER = "Railyard-Signature"
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=10)
LONGEST_WAIT = timedelta(hours=1)
SEND_TIMEOUT_SECONDS = 5
#: How long a sender holds the deliveries it took before another may take them again.
CLAIM = timedelta(minutes=2)
WEBHOOK_KEYS = {"project", "url", "events", "secret", "failing_after"}


def sign(secret: str, body: bytes, moment: int) -> str:
    """The signature header's value for `body` sent at `moment` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def create(who: access.Who, payload: Any) -> Webhook:
    """A webhook from `{"project", "url", "events", "secret", "failing_after"}` of a project `who`
    maintains (of every project: an operator's); InvalidRequest names each bad field."""
    check_json(payload)
    if not isinstance(payload, dict):
        raise InvalidRequest({"body": ["Must be a JSON object."]})
    errors: dict[str, list[str]] = {key: ["Unknown field."] for key in sorted(set(payload) - WEBHOOK_KEYS)}
    for key in ("url", "events"):
        if payload.get(key) in (None, "", []):
            errors[key] = ["This field is required."]
    project, url, events = payload.get("project"), payload.get("url"), payload.get("events")
    if project is not None and (not isinstance(project, str) or not is_slug(project)):
        errors["project"] = [
            "Use letters, digits, '-' and '_' only (at most 100 characters), or leave it out for every project."
        ]
    if "url" not in errors:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
            errors["url"] = ["Must be an http:// or https:// address."]
    if "events" not in errors:
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            errors["events"] = [f"Must be a list of event types: {', '.join(EVENTS)}."]
        elif unknown := [e for e in events if e not in EVENTS]:
            errors["events"] = [f"Unknown event type(s) {', '.join(unknown)}; choose from {', '.join(EVENTS)}."]
    secret = payload.get("secret")
    if secret is not None and (not isinstance(secret, str) or not 16 <= len(secret) <= 200):
        errors["secret"] = ["Must be a string of 16 to 200 characters (leave it out and one is made)."]
    failing_after = payload.get("failing_after", 3)
    if isinstance(failing_after, bool) or not isinstance(failing_after, int) or not 1 <= failing_after <= 100:
        errors["failing_after"] = ["Must be a whole number from 1 to 100: failed runs in a row of one model."]
    if project is None and not access.caller(who).reaches_every_project():
        errors["project"] = ["Name a project you maintain: a webhook of every project is an operator's."]
    if errors:
        raise InvalidRequest(errors)
    return Webhook.objects.create(
        project=access.project_to_launch(who, project, Role.MAINTAINER) if project is not None else None,
        owner=access.caller(who).user,
        url=url,
        events=sorted(set(events), key=EVENTS.index),
        secret=secret or "whsec_" + secrets.token_urlsafe(24),
        failing_after=failing_after,
    )


def listening(project_id: int) -> list[Webhook]:
    """The active webhooks of a project, and those of every project."""
    return list(Webhook.objects.filter(Q(project_id=project_id) | Q(project__isnull=True), active=True))


def _record(project_id: int, event: str, data: dict, hooks: list[Webhook] | None = None) -> int:
    """Queue `event` for every webhook of the project that takes it; returns how many."""
    if hooks is None:
        hooks = [hook for hook in listening(project_id) if event in hook.events]
    now = timezone.now()
    Delivery.objects.bulk_create(
        [Delivery(webhook=hook, event=event, data=data, next_attempt_at=now) for hook in hooks]
    )
    return len(hooks)


def run_ended(run: Run) -> None:
    """Called in the transaction that ends a run: `run.succeeded` or `run.failed`, and `model.failing`
    when the failure makes the model's last N runs failed (told once per streak, for each webhook's N)."""
    hooks = listening(run.project_id)
    if not hooks:
        return
    event = RUN_SUCCEEDED if run.status == RunStatus.SUCCEEDED else RUN_FAILED
    _record(run.project_id, event, {"object": _run(run)}, [hook for hook in hooks if event in hook.events])
    failing = [hook for hook in hooks if MODEL_FAILING in hook.events]
    if event != RUN_FAILED or not run.model_id or not failing:
        return
    latest = list(
        Run.objects.filter(model_id=run.model_id, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])
        .order_by("-finished_at", "-id")
        .values_list("status", flat=True)[: max(hook.failing_after for hook in failing) + 1]
    )
    streak = next((i for i, status in enumerate(latest) if status != RunStatus.FAILED), len(latest))
    model = Model.objects.get(pk=run.model_id)
    for hook in failing:
        if streak == hook.failing_after:
            data = {
                "object": {
                    "model": model.name,
                    "project": run.project.name,
                    "failed_runs_in_a_row": streak,
                    "latest_run": _run(run),
                }
            }
            _record(run.project_id, MODEL_FAILING, data, [hook])


def champion_moved(promotion: Promotion) -> None:
    """Called in the transaction of a champion's move, or of a challenger turned down."""
    event = MODEL_REJECTED if promotion.move == "rejected" else MODEL_PROMOTED
    model = promotion.model
    data = {
        "object": {
            "model": model.name,
            "project": model.project.name,
            "move": promotion.move,
            "run": promotion.run_id,
            "previous_champion": promotion.previous_champion_id,
            "metric": promotion.metric,
            "champion_score": promotion.champion_score,
            "challenger_score": promotion.challenger_score,
            "actor": promotion.actor,
            "reason": promotion.reason,
        }
    }
    _record(model.project_id, event, data)


def _run(run: Run) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "project": run.project.name,
        "model": run.model.name if run.model_id else None,
        "workflow_name": run.workflow.name if run.workflow_id else None,
        "metrics": run.metrics or {},
        "failure_reason": run.failure_reason,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def deliver_due(now: datetime | None = None, most: int = 50) -> dict[str, int]:
    """Send the deliveries whose time has come (claimed first, so that senders on several workers
    never send one twice at once); returns counts by outcome."""
    now = now or timezone.now()
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=Delivery.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .values_list("pk", flat=True)[:most]
        )
        Delivery.objects.filter(pk__in=due).update(next_attempt_at=now + CLAIM)
    for delivery in Delivery.objects.filter(pk__in=due).select_related("webhook"):
        counts[_attempt(delivery, now)] += 1
    return counts


def body_of(delivery: Delivery) -> bytes:
    event = {
        "id": f"evt_{delivery.pk}",
        "type": delivery.event,
        "created": int(delivery.created_at.timestamp()),
        "data": delivery.data,
    }
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def _attempt(delivery: Delivery, now: datetime) -> str:
    body = body_of(delivery)
    request = urllib.request.Request(
        delivery.webhook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Railyard-Webhooks/1",
            SIGNATURE_HEADER: sign(delivery.webhook.secret, body, int(time.time())),
        },
    )
    code, error = None, ""
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS) as response:
            code = response.status
    except urllib.error.HTTPError as exc:
        code, error = exc.code, f"answered {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = f"could not be sent: {getattr(exc, 'reason', exc)}"
    attempts = delivery.attempts + 1
    entry = {"attempt": attempts, "at": now.isoformat(), "response_code": code, "error": error}
    fields: dict[str, Any] = {"attempts": attempts, "response_code": code, "log": [*delivery.log, entry]}
    if code is not None and 200 <= code < 300:
        outcome = "delivered"
        fields.update(status=Delivery.DELIVERED, delivered_at=now)
    elif attempts >= MAX_ATTEMPTS:
        outcome = "failed"
        fields["status"] = Delivery.FAILED
        log.warning(
            "webhook %s: gave up on delivery %s after %d attempts (%s)",
            delivery.webhook_id,
            delivery.pk,
            attempts,
            error,
        )
    else:
        outcome = "retrying"
        fields["next_attempt_at"] = now + min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_WAIT)
    Delivery.objects.filter(pk=delivery.pk).update(**fields)
    return outcome


def recent(webhook: Webhook, most: int = 100) -> list[Delivery]:
    return list(webhook.deliveries.order_by("-id")[:most])


def forget_old(days: int = 30) -> int:
    """Deliveries that ended more than `days` ago are removed."""
    cutoff = timezone.now() - timedelta(days=days)
    ended = Q(status=Delivery.DELIVERED) | Q(status=Delivery.FAILED)
    return Delivery.objects.filter(ended, created_at__lt=cutoff).delete()[0]
