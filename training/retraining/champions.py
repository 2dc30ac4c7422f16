"""A model's champion: the run whose model is in use, and every move of it.

- The first successful run of a model becomes its champion. A later retrain is compared with the
  champion by its trainer (`railyard_trainer.comparison`); a `promoted` decision moves the champion.
- A person promotes a run, rejects one awaiting approval, or rolls back to the champion before the
  current one; each is a `Promotion` row with its actor, reason and both scores (on the same rows
  where the challenger was compared with that champion).
"""

from __future__ import annotations

from django.db import transaction

from railyard_trainer.vocabulary import Decision, Move, RunStatus
from training import audit, webhooks
from training.models import AuditAction, Model, Promotion, Run

SYSTEM = "railyard"


class CannotMove(Exception):
    """The champion cannot move as asked; the message says why."""


def score(run: Run | None, metric: str) -> float | None:
    """The run's own holdout score on the metric."""
    if run is None:
        return None
    value = (run.metrics or {}).get(metric)
    return value if isinstance(value, int | float) else None


def _move(model: Model, run: Run, move: Move, actor: str, reason: str, expected: Run | None) -> Promotion:
    """Make `run` champion if the champion is still `expected` (another writer may have moved it)."""
    with transaction.atomic():
        moved = Model.objects.filter(pk=model.pk, champion=expected).update(champion=run)
        if not moved:
            raise CannotMove(f"The champion of {model.name} changed meanwhile; look again and retry.")
        model.champion = run
        return _record(model, move, run, expected, actor, reason)


def _record(model: Model, move: Move, run: Run, champion: Run | None, actor: str, reason: str) -> Promotion:
    """The row of a move (or a rejection) with both scores, and the webhooks' deliveries of it."""
    promotion = Promotion.objects.create(
        model=model,
        move=move,
        run=run,
        previous_champion=champion,
        metric=model.metric,
        **_scores(champion, run, model.metric),
        actor=actor,
        reason=reason,
    )
    if actor != SYSTEM:  # a person's decision; the trainer's are the promotion history itself
        audit.record(
            actor, AuditAction(move.value), model.project, f"run {run.pk} of model {model.name}", reason=reason
        )
    webhooks.champion_moved(promotion)
    return promotion


def challenge(model: Model) -> dict | None:
    """What a new retrain of `model` is compared with: its champion now, or None while it has none."""
    champion = model.champion
    if champion is None:
        return None
    return {
        "champion_run": champion.pk,
        "champion_uri": champion.artifact_uri,
        "metric": model.metric,
        "policy": model.promotion,
    }


def challenger_succeeded(run: Run) -> Promotion | None:
    """A retrain of a model succeeded: with no champion yet it becomes the champion; otherwise its
    comparison's decision stands (`promoted` moves the champion, if it is still the one compared with)."""
    model = Model.objects.select_related("champion").get(pk=run.model_id)
    comparison = run.comparison or {}
    try:
        if model.champion_id is None:
            return _move(model, run, Move.PROMOTED, SYSTEM, "the model's first successful run", expected=None)
        if comparison.get("decision") == Decision.PROMOTED and comparison["champion_run"] == model.champion_id:
            return _move(model, run, Move.PROMOTED, SYSTEM, comparison["reason"], expected=model.champion)
    except CannotMove:
        pass
    return None


def reject(model: Model, run: Run, actor: str, reason: str = "") -> Promotion:
    """A person turns down a challenger awaiting approval (or any retrain): the champion stays."""
    if run.model_id != model.pk:
        raise CannotMove(f"Run {run.pk} is not a run of {model.name}.")
    if run.pk == model.champion_id:
        raise CannotMove(f"Run {run.pk} is the champion; roll back instead.")
    if model.promotions.filter(run=run, move=Move.REJECTED).exists():
        raise CannotMove(f"Run {run.pk} was rejected already.")
    with transaction.atomic():
        return _record(model, Move.REJECTED, run, model.champion, actor, reason or f"rejected by {actor}")


def _scores(champion: Run | None, run: Run, metric: str) -> dict:
    """Both scores of a move: on the challenger's own holdout rows where its comparison was with this
    champion, else each run's own holdout score."""
    comparison = run.comparison or {}
    if champion is not None and comparison.get("champion_run") == champion.pk:
        return {"champion_score": comparison["champion_score"], "challenger_score": comparison["challenger_score"]}
    return {"champion_score": score(champion, metric), "challenger_score": score(run, metric)}


def promote(model: Model, run: Run, actor: str, reason: str = "") -> Promotion:
    """A person makes one of the model's successful runs its champion."""
    if run.model_id != model.pk:
        raise CannotMove(f"Run {run.pk} is not a run of {model.name}.")
    if run.status != RunStatus.SUCCEEDED:
        raise CannotMove(f"Run {run.pk} has not succeeded ({run.status}); only a trained model can be champion.")
    if run.pk == model.champion_id:
        raise CannotMove(f"Run {run.pk} is the champion already.")
    return _move(model, run, Move.PROMOTED, actor, reason or f"promoted by {actor}", expected=model.champion)


def rollback(model: Model, actor: str, reason: str = "") -> Promotion:
    """Restore the champion that the current one replaced."""
    if model.champion is None:
        raise CannotMove(f"{model.name} has no champion to roll back.")
    # The champion before it is the one its promotion replaced (a run restored by a rollback keeps
    # its place in that line, so rolling back again goes further back).
    arrivals = model.promotions.filter(run=model.champion, move=Move.PROMOTED)
    arrival = arrivals.select_related("previous_champion").first()
    previous = arrival.previous_champion if arrival else None
    if previous is None:
        raise CannotMove(f"Run {model.champion.pk} is the first champion of {model.name}; there is none before it.")
    return _move(model, previous, Move.ROLLED_BACK, actor, reason or f"rolled back by {actor}", expected=model.champion)


def awaiting_approval(model: Model) -> list[Run]:
    """Retrains whose comparison waits for a person, newest first: not yet promoted, rejected or overtaken
    (a decision on the champion they were compared with, which is still the champion)."""
    decided = model.promotions.filter(move__in=[Move.PROMOTED, Move.REJECTED]).values_list("run_id", flat=True)
    return list(
        model.runs.filter(
            status=RunStatus.SUCCEEDED,
            comparison__decision=Decision.AWAITING_APPROVAL,
            comparison__champion_run=model.champion_id,
        )
        .exclude(pk__in=decided)
        .order_by("-id")
    )
