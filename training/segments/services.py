"""A segmented request's life: planned by its parent's job, trained by its children in a few packed jobs,
ended with the table of segments, the routing and the routed combination's metric.

- `check_count`: at submit, a `400` when the number of segments can be known from the file alone and
  is over `max_segments`.
- `start`: at submit, the parent and its generic child, carried by one job that plans the request and
  trains the generic model (`railyard_trainer.packed`).
- `planned`: that job succeeded. A child run per segment with enough rows, a `Segment` row per value
  (the small ones scored already), the children packed by rows into the plan's jobs.
- `child_succeeded`: a segment's run records its comparison with the generic model on its `Segment`.
- `settle` (each worker pass, for the requests `ended` finds): once every child has ended, the parent
  succeeds (`segments.json`, `routing.json`, its metric: the routed combination on the whole holdout)
  or fails naming the children that did not succeed.
- `retry_failed`: `failed_only` — the failed children back to the queue as new attempts, packed again,
  and the parent running again; those that succeeded are not retrained.
- `job_spec`: what a packed job's trainer is given.
"""

from __future__ import annotations

import hashlib
import io
import json
import math

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from railyard_trainer import vocabulary as v
from railyard_trainer.body import InvalidRequest
from railyard_trainer.spec import segment_spec
from railyard_trainer.storage import ArtifactNotFound, open_store
from railyard_trainer.vocabulary import RUN_ACTIVE, JobStatus, RunKind, RunStatus, Winner
from training import artifacts, states
from training.conf import railyard
from training.models import Job, Run, RunEvent, Segment

#: The runs a segmented request's jobs carry besides its parent.
CHILDREN = (RunKind.GENERIC, RunKind.SEGMENT)
#: Segmented requests one pass settles at most.
MOST_SETTLED = 100
#: How long a segment value may be as a `Segment`'s name.
NAME_LENGTH = 255


class CannotRetry(Exception):
    """`failed_only` does not apply to this run; the message says why."""


def is_packed(run: Run) -> bool:
    """Whether the run is carried by a segmented request's packed job."""
    return run.kind == RunKind.SEGMENTED or run.kind in CHILDREN


def start(parent: Run) -> None:
    """Within the submit's transaction: the generic child (when asked for) and the job that plans."""
    runs = [parent]
    if parent.spec["train"]["segment_by"]["include_generic"]:
        runs += _children(parent, [None])
    states.pack(runs, f"planning run {parent.pk}")


def _children(parent: Run, values: list) -> list[Run]:
    """Queued children of the parent, one per segment value (None: the generic model), with their events."""
    made = Run.objects.bulk_create(
        [
            Run(
                owner_id=parent.owner_id,
                user=parent.user,
                project_id=parent.project_id,
                workflow_id=parent.workflow_id,
                model_description=parent.model_description,
                compute_resource=parent.compute_resource,
                request=parent.request,
                executor=parent.executor,
                artifact_uri="",
                kind=RunKind.GENERIC if value is None else RunKind.SEGMENT,
                parent=parent,
                segment=value,
            )
            for value in values
        ]
    )
    for run in made:
        run.spec = segment_spec(parent.spec, run.pk, run.segment)
        run.artifact_uri = railyard.run_artifact_uri(run.pk, run.attempt)
    Run.objects.bulk_update(made, ["spec", "artifact_uri"], batch_size=500)
    RunEvent.objects.bulk_create(
        RunEvent(run=run, new_status=RunStatus.QUEUED, reason=f"part of run {parent.pk}", actor=states.WORKER)
        for run in made
    )
    return made


def check_count(spec: dict, task: str) -> None:
    """Refuse at submit a request whose number of segments is known already and over `max_segments`.

    It is known when one local parquet file is read whole (no filters, no date range) and the holdout
    is random: the training rows of each value then follow from the file alone, split exactly as the
    trainer will (`holdout.split_within`). Otherwise the plan counts them (a bad-data failure naming the
    count). InvalidRequest at `train.segment_by.max_segments`."""
    data, train = spec["data"], spec["train"]
    segment_by = train["segment_by"]
    sources = data["features"]
    simple = len(sources) == 1 and sources[0]["source"] == v.FILE and sources[0]["format"] == "parquet"
    if not simple or data.get("filters") or data.get("date_range"):
        return
    if data["holdout_sampling"]["sampling_function"] != v.RANDOM:
        return
    import pandas as pd

    from railyard_trainer.holdout import split_within
    from railyard_trainer.spec import TrainSpec

    column, label = segment_by["column"], train["label"]
    stratify = data["holdout_sampling"].get("stratify")
    columns = list(dict.fromkeys([column, label, *([stratify] if isinstance(stratify, str) else [])]))
    try:
        frame = pd.read_parquet(sources[0]["path"], columns=columns)
    except Exception:  # noqa: BLE001 - what cannot be read here the trainer reports, with its reason
        return
    frame = frame[frame[label].notna()]
    training, _ = split_within(frame, TrainSpec.from_dict(spec), column)
    grouped = training.groupby(column, sort=False)
    enough = grouped.size() >= segment_by["min_rows"]
    if task != v.REGRESSION:
        enough &= grouped[label].nunique() >= 2
    count = int(enough.sum())
    if count > segment_by["max_segments"]:
        raise InvalidRequest(
            {
                "train.segment_by.max_segments": [
                    f"{count} values of {column!r} have at least {segment_by['min_rows']} training rows, more than "
                    f"max_segments ({segment_by['max_segments']}); raise max_segments or min_rows."
                ]
            }
        )


def job_spec(job: Job, runs: list[Run]) -> tuple[dict, str]:
    """A packed job's spec and the folder of its own log: the request's spec, its plan's folder when
    the job plans, the generic model's folder to compare with, and each run's folder and segment."""
    parent = next((run for run in runs if run.kind == RunKind.SEGMENTED), None)
    planning = parent is not None
    parent = parent or runs[0].parent
    generic = None
    if not planning:
        generic = parent.children.filter(kind=RunKind.GENERIC, status=RunStatus.SUCCEEDED).first()
    entries = [
        {
            "run_id": str(run.pk),
            "out": run.artifact_uri,
            "segment": None if run.kind == RunKind.GENERIC else {"value": run.segment},
        }
        for run in runs
        if run.kind in CHILDREN
    ]
    spec = {
        "spec": parent.spec,
        "plan": parent.artifact_uri if planning else None,
        "generic": generic.artifact_uri if generic else None,
        "runs": entries,
    }
    return spec, f"{parent.artifact_uri}/jobs/{job.pk}"


def planned(parent: Run) -> bool:
    """The parent's job succeeded: make its segments and children from plan.json and pack them into
    jobs; False when it had been done already."""
    try:
        raw = open_store(parent.artifact_uri).get(v.PLAN)
    except ArtifactNotFound:
        return states.mark_failed(parent, "the planning job ended without writing plan.json")
    plan = json.loads(raw)
    generic = parent.children.filter(kind=RunKind.GENERIC).first()
    if generic is not None and generic.status != RunStatus.SUCCEEDED:
        return states.mark_failed(
            parent, f"the generic model did not succeed: {generic.failure_reason or generic.status}"
        )
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=parent.pk)
        if locked.status not in RUN_ACTIVE or _planned(parent):
            return False
        artifacts.record(parent, artifacts.entry(parent, v.PLAN, raw, "application/json"))
        children = _children(parent, [entry["segment"] for entry in plan["segments"]])
        by_value = {json.dumps(run.segment): run for run in children}
        rows = [
            _segment(parent, plan["metric"], {**entry, "run": by_value[json.dumps(entry["segment"])].pk})
            for entry in plan["segments"]
        ]
        Segment.objects.bulk_create(rows + [_segment(parent, plan["metric"], item) for item in plan["small"]])
        for index, group in enumerate(plan["groups"]):
            runs = [by_value[json.dumps(value)] for value in group]
            states.pack(runs, f"segments of run {parent.pk}, {index + 1} of {len(plan['groups'])}")
        if parent.status == RunStatus.SUBMITTED:
            states.transition(parent, RunStatus.RUNNING, reason="planned")
        Run.objects.filter(pk=parent.pk).update(
            status_message=f"training {len(children)} segment model(s) in {len(plan['groups'])} job(s)"
        )
        transaction.on_commit(_dispatch)
    if not children:
        settle([parent.pk])
    return True


def _planned(parent: Run) -> bool:
    """Whether the parent's current attempt has been planned (its plan recorded with its children)."""
    return parent.artifacts.filter(name=v.PLAN, attempt=parent.attempt).exists()


def _dispatch() -> None:
    from training import tasks

    tasks.enqueue_dispatch()


def _segment(parent: Run, metric: str, item: dict) -> Segment:
    return Segment(
        parent=parent,
        value=item["segment"],
        name=_name_of(item["segment"]),
        run_id=item.get("run"),
        train_rows=item["train_rows"],
        holdout_rows=item["holdout_rows"],
        metric=metric,
        segment_score=item.get("segment_score"),
        generic_score=item.get("generic_score"),
        difference=item.get("difference"),
        interval=item.get("interval"),
        winner=item.get("winner", Winner.GENERIC),
    )


def _name_of(value: object) -> str:
    """A segment value as text; one too long to keep whole ends in a digest of it, so names stay unique."""
    text = str(value)
    if len(text) <= NAME_LENGTH:
        return text
    return f"{text[: NAME_LENGTH - 9]}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def child_succeeded(run: Run, item: dict) -> None:
    """A segment's run succeeded: its comparison with the generic model, on its `Segment`."""
    fields = ("segment_score", "generic_score", "difference", "interval", "winner", "holdout_rows")
    Segment.objects.filter(run=run).update(**{name: item[name] for name in fields})


def ended(executor: str) -> list[int]:
    """The running segmented requests of an executor none of whose children is still active."""
    active = Run.objects.filter(parent=OuterRef("pk"), status__in=RUN_ACTIVE)
    running = Run.objects.filter(kind=RunKind.SEGMENTED, status=RunStatus.RUNNING, executor=executor)
    return list(running.filter(~Exists(active)).values_list("pk", flat=True)[:MOST_SETTLED])


def settle(parent_ids: list[int]) -> None:
    """End each given segmented request whose children have all ended."""
    for parent in Run.objects.filter(pk__in=parent_ids, kind=RunKind.SEGMENTED, status__in=RUN_ACTIVE):
        if _planned(parent) and not parent.children.filter(status__in=RUN_ACTIVE).exists():
            _settle(parent)


def _settle(parent: Run) -> bool:
    children = list(parent.children.order_by("pk"))
    unfinished = [child for child in children if child.status != RunStatus.SUCCEEDED]
    if unfinished:
        named = ", ".join(str(child.pk) for child in unfinished[:10]) + (" …" if len(unfinished) > 10 else "")
        return states.mark_failed(
            parent,
            f"{len(unfinished)} of {len(children)} model(s) did not succeed (runs {named}); "
            'retry with {"failed_only": true} to train just those',
        )
    from railyard_trainer.segments import routed_from_scores, routing

    generic = next((child for child in children if child.kind == RunKind.GENERIC), None)
    items = [segment.item() for segment in parent.segments.order_by("name")]
    routes = routing(items, generic.pk if generic else None)
    winners = [child for child in children if child.kind == RunKind.SEGMENT and routes.get(_name(child)) == child.pk]
    metric = items[0]["metric"] if items else v.PRIMARY_METRIC[v.BINARY]
    summary = (generic or children[0]).data_summary if children else {}
    train = parent.spec["train"]
    routed = routed_from_scores(
        metric,
        _task(metric),
        _scores(generic) if generic else None,
        [_scores(child) for child in winners],
        summary.get("positive_class"),
        train.get("decision_threshold", v.DEFAULT_DECISION_THRESHOLD),
    )
    store = open_store(parent.artifact_uri)
    written = [
        store.put(v.SEGMENTS, _json({"metric": metric, "segments": items}), "application/json").to_dict(),
        store.put(
            v.ROUTING, _json({"generic_run": generic.pk if generic else None, "routes": routes}), "application/json"
        ).to_dict(),
    ]
    counts = {"segment": sum(item["winner"] == Winner.SEGMENT for item in items)}
    counts["generic"] = len(items) - counts["segment"]
    data_summary = {
        "segments": len(items),
        "segment_models": sum(1 for child in children if child.kind == RunKind.SEGMENT),
        "routed": counts,
        "generic_run": generic.pk if generic else None,
        # The generic model alone on the whole holdout, beside the routed combination's metric.
        f"generic_{metric}": (generic.metrics or {}).get(metric) if generic else None,
        "train_rows": summary.get("train_rows"),
        "holdout_rows": summary.get("holdout_rows"),
    }
    with transaction.atomic():
        for entry in written:
            artifacts.record(parent, entry)
        return states.mark_succeeded(
            parent,
            metrics={} if math.isnan(routed) else {metric: routed},
            data_summary=data_summary,
            reason=f"every model finished: {counts['segment']} segment(s) served by their own model",
        )


def _task(metric: str) -> str:
    """The task a primary metric ranks (a segmented request's metric is its task's primary one)."""
    return {name: task for task, name in v.PRIMARY_METRIC.items()}[metric]


def _name(run: Run) -> str:
    return str(run.segment)


def _scores(run: Run):
    import pandas as pd

    return pd.read_parquet(io.BytesIO(open_store(run.artifact_uri).get(v.HOLDOUT_SCORES)))


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()


def retry_failed(parent: Run, actor: str) -> Run:
    """`failed_only`: retrain the failed children of a failed segmented request, and nothing else."""
    if parent.kind != RunKind.SEGMENTED:
        raise CannotRetry("failed_only applies to a segmented request (train.segment_by) only.")
    if parent.status != RunStatus.FAILED:
        raise CannotRetry(f"Run {parent.pk} is {parent.status}; failed_only retries the children of a failed request.")
    failed = list(parent.children.filter(kind=RunKind.SEGMENT).exclude(status=RunStatus.SUCCEEDED).order_by("pk"))
    if not _planned(parent) or not failed:
        raise CannotRetry(
            f"Run {parent.pk} failed before any segment model trained: retry the whole request (without failed_only)."
        )
    from railyard_trainer.segments import pack

    rows = dict(Segment.objects.filter(run__in=failed).values_list("run_id", "train_rows"))
    jobs = parent.spec["train"]["segment_by"]["jobs"] or v.DEFAULT_SEGMENT_JOBS
    with transaction.atomic():
        if not states.reopen(parent, actor, f"retrying {len(failed)} failed segment model(s)"):
            raise CannotRetry(f"Run {parent.pk} changed meanwhile; look again.")
        for child in failed:
            states.retrain(child, actor, f"retried with the failed children of run {parent.pk}")
        by_id = {child.pk: child for child in failed}
        groups = pack({child.pk: rows.get(child.pk, 0) for child in failed}, jobs)
        for index, group in enumerate(groups):
            states.pack(
                [by_id[pk] for pk in group], f"retried segments of run {parent.pk}, {index + 1} of {len(groups)}"
            )
        Run.objects.filter(pk=parent.pk).update(status_message=f"retraining {len(failed)} segment model(s)")
        transaction.on_commit(_dispatch)
    parent.refresh_from_db()
    return parent


def cancel_children(parent: Run, actor: str) -> None:
    """Cancel a cancelled request's active children, and end the jobs left with nothing to run."""
    if parent.kind != RunKind.SEGMENTED:
        return
    for child in parent.children.filter(status__in=RUN_ACTIVE):
        states.cancel(child, actor=actor, reason=f"run {parent.pk} was cancelled")
    mine = Q(memberships__run__parent=parent) | Q(memberships__run=parent)
    for job in Job.objects.filter(mine, status=JobStatus.PENDING).distinct():
        if not any(run.state.is_active for run in states.carried(job)):
            states.end_job(job, JobStatus.CANCELLED, v.Cause.CANCELLED, "its runs were cancelled", actor=actor)
