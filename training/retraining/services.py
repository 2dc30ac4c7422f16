"""What users do with models and their schedules — define, retrain, schedule, pause, backfill —
shared by the REST API, the pages and the scheduler."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone as clock

from railyard_trainer import promotion
from railyard_trainer.body import InvalidRequest, fields
from railyard_trainer.schema import is_slug
from railyard_trainer.vocabulary import (
    BINARY,
    CLASSIFICATION,
    METRICS,
    MULTICLASS,
    PRIMARY_WORKFLOW_METRIC,
    REGRESSION,
    RUN_ACTIVE,
    Catchup,
    Concurrency,
    FireKind,
    FireOutcome,
)
from training import access, compositions, contract, images, services
from training.models import Backfill, Fire, Model, Project, Run, Schedule
from training.retraining import champions, cron, dates

MODEL_KEYS = {"name", "project", "request", "metric", "promotion"}
UPDATABLE_KEYS = {"request", "metric", "promotion"}
SCHEDULE_KEYS = {"cron", "timezone", "concurrency", "catchup", "paused"}
BACKFILL_KEYS = {"start", "end", "parallelism", "dry_run"}
#: The most fire times one backfill may ask for.
MOST_BACKFILL_FIRES = 1000
SCHEDULER = "scheduler"


def _refuse(errors: dict[str, list[str]]) -> None:
    if errors:
        raise InvalidRequest(errors)


def resolved(template: dict, project: str, moment: datetime, tz: str = "UTC") -> tuple[dict, dict]:
    """A model's template as a request at `moment` in `tz` (relative dates resolved, the model's
    project), and that request cleaned; InvalidRequest when it does not validate."""
    request = {**dates.resolve(template, moment, tz), "project": project}
    return request, contract.validate(request)


def check_template(request: Any, project: str, moment: datetime) -> dict:
    """A model's request template, as it would resolve now: the cleaned request, or InvalidRequest
    with every path under `request.`."""
    if not isinstance(request, dict):
        raise InvalidRequest({"request": ["Must be a JSON object: a training request whose dates may be relative."]})
    if request.get("project", project) != project:
        raise InvalidRequest({"request.project": [f"Must be the model's project ({project!r}) or left out."]})
    try:
        return resolved(request, project, moment)[1]
    except InvalidRequest as exc:
        raise InvalidRequest({f"request.{path}": messages for path, messages in exc.errors.items()}) from None


def metric_for(workflow_task: str, metric: Any) -> str:
    """The model's metric: the one asked for, if the workflow's task reports it, else the task's primary one."""
    if metric is None:
        return PRIMARY_WORKFLOW_METRIC[workflow_task]
    tasks = {REGRESSION} if workflow_task == REGRESSION else {BINARY, MULTICLASS}
    reported = [name for name, known in METRICS.items() if tasks & set(known.tasks)]
    if metric not in reported:
        known = ", ".join(reported)
        problem = f"Unknown metric {metric!r} for a {workflow_task} workflow; choose one of {known}."
        raise InvalidRequest({"metric": [problem]})
    return metric


def _workflow_task(clean: dict) -> str:
    """What the template's runs do: its workflow's task, or a composition's members' (InvalidRequest
    naming a member that cannot be composed)."""
    if "compose" in clean:
        members = compositions.members(None, clean)
        return REGRESSION if compositions.task_of(members[0]) == REGRESSION else CLASSIFICATION
    project = Project.objects.filter(name=clean["project"]).first()
    return images.workflow(images.image_of(project), clean["train"]["workflow_name"]).task


def _settings(request: Any, project: str, metric: Any, policy: Any, errors: dict) -> tuple[dict, str, dict]:
    """A model's template, metric and promotion policy, checked together: each bad field joins `errors`."""
    checked_metric = checked_policy = None
    try:
        clean = check_template(request, project, clock.now())
    except InvalidRequest as exc:
        errors.update(exc.errors)
    else:
        try:
            checked_metric = metric_for(_workflow_task(clean), metric)
        except InvalidRequest as exc:
            errors.update(exc.errors)
    try:
        checked_policy = promotion.check_policy(policy)
    except InvalidRequest as exc:
        errors.update(exc.errors)
    _refuse(errors)  # every bad field at once
    return {**request, "project": project}, checked_metric, checked_policy


def create_model(who: access.Who, payload: Any) -> Model:
    """A new model from `{"name", "project", "request", "metric", "promotion"}`, in a project where `who`
    may launch; InvalidRequest names each bad field."""
    body = fields(payload, MODEL_KEYS, ("name", "project", "request"))
    errors: dict[str, list[str]] = {}
    name, project = body["name"], body["project"]
    for key, value in (("name", name), ("project", project)):
        if not isinstance(value, str) or not is_slug(value):
            errors[key] = ["Use letters, digits, '-' and '_' only (at most 100 characters)."]
    if not errors.get("name") and Model.objects.filter(name=name).exists():
        errors["name"] = [f"A model named {name!r} exists already."]
    template, metric, policy = _settings(body["request"], project, body.get("metric"), body.get("promotion"), errors)
    try:
        with transaction.atomic():
            return Model.objects.create(
                name=name,
                project=access.project_to_launch(who, project),
                owner=access.caller(who).user,
                request=template,
                metric=metric,
                promotion=policy,
            )
    except IntegrityError:
        raise InvalidRequest({"name": [f"A model named {name!r} exists already."]}) from None


def update_model(model: Model, payload: Any) -> Model:
    """Change a model's `request`, `metric` or `promotion` (its name and project stay); later retrains
    use them, earlier ones keep the template they ran with."""
    body = fields(payload, UPDATABLE_KEYS, ())
    errors: dict[str, list[str]] = {}
    if not body:
        errors["body"] = [f"Send at least one of {', '.join(sorted(UPDATABLE_KEYS))}."]
    request = body.get("request", model.request)
    metric = body.get("metric", model.metric)
    policy = body.get("promotion", model.promotion)
    model.request, model.metric, model.promotion = _settings(request, model.project.name, metric, policy, errors)
    model.save(update_fields=["request", "metric", "promotion", "updated_at"])
    return model


def retrain(
    model: Model,
    owner: AbstractBaseUser,
    moment: datetime,
    tz: str = "UTC",
    reason: str = "retrain",
    notify: bool = True,
) -> Run:
    """Queue a retrain: the model's template with its relative dates resolved at `moment` in `tz`;
    InvalidRequest when the resolved request does not validate (a workflow removed, a window empty)."""
    request, clean = resolved(model.request, model.project.name, moment, tz)
    return services.queue_run(
        owner,
        request,
        clean,
        reason=reason,
        notify=notify,
        challenge=champions.challenge(model),
        model=model,
        template=model.request,
        scheduled_time=moment,
        timezone=tz,
    )


def _choice(body: dict, key: str, words: type, default: str, errors: dict) -> str:
    value = body.get(key, default)
    known = [word.value for word in words]
    if value not in known:
        errors[key] = [f"Unknown {key} {value!r}; choose one of {', '.join(known)}."]
    return value


def add_schedule(model: Model, payload: Any, now: datetime | None = None) -> Schedule:
    """A schedule for `model` from `{"cron", "timezone", "concurrency", "catchup", "paused"}`."""
    body = fields(payload, SCHEDULE_KEYS, ("cron",))
    errors: dict[str, list[str]] = {}
    tz = body.get("timezone", "UTC")
    try:
        cron.zone(tz if isinstance(tz, str) else "")
    except cron.BadSchedule as exc:
        errors["timezone"] = [str(exc)]
    try:
        cron.check(body["cron"], "UTC")
    except cron.BadSchedule as exc:
        errors["cron"] = [str(exc)]
    concurrency = _choice(body, "concurrency", Concurrency, Concurrency.FORBID, errors)
    catchup = _choice(body, "catchup", Catchup, Catchup.LATEST, errors)
    paused = body.get("paused", False)
    if not isinstance(paused, bool):
        errors["paused"] = ["Must be true or false."]
    _refuse(errors)
    now = now or clock.now()
    return Schedule.objects.create(
        model=model,
        cron=body["cron"],
        timezone=tz,
        concurrency=concurrency,
        catchup=catchup,
        paused=paused,
        next_fire_at=next(cron.fire_times(body["cron"], tz, now)),
    )


def upcoming(schedule: Schedule, count: int = 5, now: datetime | None = None) -> list[datetime]:
    """The schedule's next fire times, in its timezone (while paused: those after a resume now)."""
    if schedule.paused:
        return cron.next_fire_times(schedule.cron, schedule.timezone, now or clock.now(), count)
    first = schedule.next_fire_local
    return [first, *cron.next_fire_times(schedule.cron, schedule.timezone, first, count - 1)]


def next_fire(schedules: Iterable[Schedule]) -> datetime | None:
    """The soonest next fire time of the running schedules among `schedules`, in its schedule's timezone."""
    soonest = min((s for s in schedules if not s.paused), key=lambda s: s.next_fire_at, default=None)
    return soonest.next_fire_local if soonest else None


def pause(schedule: Schedule) -> Schedule:
    Schedule.objects.filter(pk=schedule.pk).update(paused=True, updated_at=clock.now())
    schedule.refresh_from_db()
    return schedule


def resume(schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Fire again from the next time after now: the times passed while paused are not fired."""
    now = now or clock.now()
    following = next(cron.fire_times(schedule.cron, schedule.timezone, now))
    Schedule.objects.filter(pk=schedule.pk, paused=True).update(paused=False, next_fire_at=following, updated_at=now)
    schedule.refresh_from_db()
    return schedule


def active_runs(schedule: Schedule) -> list[Run]:
    """The runs of the schedule's own fires (not its backfills') that have not ended (their status only)."""
    runs = Run.objects.filter(fire__schedule=schedule, fire__backfill__isnull=True, status__in=RUN_ACTIVE)
    return list(runs.only("id", "status", "attempt"))


def fire(
    schedule: Schedule, scheduled_time: datetime, kind: FireKind, actor: str, reason: str = "", notify: bool = True
) -> Fire | None:
    """Record a fire and start its run as the schedule's concurrency says; None when the time was
    fired already (by another replica). A request that no longer validates is a failed fire with its reason."""
    with transaction.atomic(savepoint=False):
        try:
            with transaction.atomic():  # a savepoint: a time fired already is not an error of the caller's
                record = Fire.objects.create(
                    schedule=schedule,
                    scheduled_time=scheduled_time,
                    kind=kind,
                    outcome=FireOutcome.STARTED,
                    actor=actor,
                    reason=reason,
                )
        except IntegrityError:
            return None
        active = active_runs(schedule) if schedule.concurrency != Concurrency.ALLOW else []
        if active and schedule.concurrency == Concurrency.FORBID:
            ids = ", ".join(str(run.pk) for run in active)
            record.outcome = FireOutcome.SKIPPED
            record.reason = _join(reason, f"skipped: run {ids} of an earlier fire is still active (concurrency forbid)")
            record.save(update_fields=["outcome", "reason"])
            return record
        if active and schedule.concurrency == Concurrency.REPLACE:
            for run in active:
                services.cancel(run, actor=SCHEDULER)
            replaced = ", ".join(str(run.pk) for run in active)
            record.reason = _join(reason, f"cancelled run {replaced} (concurrency: replace)")
        return start_fire(record, notify)


def start_fire(record: Fire, notify: bool = True) -> Fire:
    """Start the run of a recorded fire, its relative dates resolved at the fire's time in the schedule's timezone."""
    schedule = record.schedule
    model = schedule.model
    when = record.local_time
    try:
        # The request is refused, if at all, before anything is written.
        record.run = retrain(
            model,
            model.owner,
            when,
            schedule.timezone,
            reason=f"{record.kind} fire of schedule {schedule.pk} for {when.isoformat()}",
            notify=notify,
        )
    except InvalidRequest as exc:
        record.outcome = FireOutcome.FAILED
        record.reason = _join(record.reason, f"the model's request does not validate at this time: {exc}")
    else:
        record.outcome = FireOutcome.STARTED
    record.save(update_fields=["run", "outcome", "reason"])
    return record


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def fire_now(schedule: Schedule, actor: str) -> Fire:
    """Run now: a manual fire at the present moment, under the schedule's concurrency."""
    return fire(schedule, clock.now(), FireKind.MANUAL, actor)


def parse_moment(raw: Any, key: str, tz: str, end: bool) -> datetime:
    """A backfill bound: an ISO date (its whole day, in the schedule's timezone) or an ISO date-time."""
    if isinstance(raw, str):
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            pass
        else:
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), cron.zone(tz))
            return moment - timedelta(microseconds=1) if end else moment
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=cron.zone(tz))
    raise InvalidRequest({key: [f"{raw!r} is not an ISO date (YYYY-MM-DD) or date-time."]})


def backfill(schedule: Schedule, payload: Any, actor: str) -> tuple[Backfill | None, list[datetime], list[datetime]]:
    """Fires for the schedule's times from `start` to `end`, at most `parallelism` running at once.

    Returns (the backfill, or None for a dry run; its fire times in the schedule's timezone; the
    times in range that had fired already and are left alone)."""
    body = fields(payload, BACKFILL_KEYS, ("start", "end"))
    start = parse_moment(body["start"], "start", schedule.timezone, end=False)
    end = parse_moment(body["end"], "end", schedule.timezone, end=True)
    errors: dict[str, list[str]] = {}
    parallelism = body.get("parallelism", 1)
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or not 1 <= parallelism <= 100:
        errors["parallelism"] = ["Must be a whole number from 1 to 100."]
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        errors["dry_run"] = ["Must be true or false."]
    if start > end:
        errors["start"] = ["Must not be after the end."]
    elif end > clock.now():
        errors["end"] = ["A backfill fills the past: the end must not be in the future."]
    _refuse(errors)
    try:
        times = cron.times_between(schedule.cron, schedule.timezone, start, end, MOST_BACKFILL_FIRES)
    except cron.BadSchedule as exc:
        raise InvalidRequest({"end": [str(exc)]}) from None
    fired = set(schedule.fires.filter(scheduled_time__in=times).values_list("scheduled_time", flat=True))
    new = [moment for moment in times if moment not in fired]
    done = [moment for moment in times if moment in fired]
    if dry_run:
        return None, new, done
    with transaction.atomic():
        record = Backfill.objects.create(schedule=schedule, start=start, end=end, parallelism=parallelism, actor=actor)
        Fire.objects.bulk_create(
            [
                Fire(
                    schedule=schedule,
                    scheduled_time=moment,
                    kind=FireKind.BACKFILL,
                    outcome=FireOutcome.PENDING,
                    backfill=record,
                    actor=actor,
                )
                for moment in new
            ],
            ignore_conflicts=True,
        )
    return record, new, done
