"""A model's champion: the run whose model is in use, and every move of it.

- The first successful run of a model becomes its champion.
- A person promotes a run, or rolls back to the champion before the current one; each move is a
  `Promotion` row with its actor, reason and both scores.
"""

from __future__ import annotations

from django.db import transaction

from railyard_trainer.vocabulary import Move, RunStatus
from training.models import Model, Promotion, Run

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
        return Promotion.objects.create(
            model=model,
            move=move,
            run=run,
            previous_champion=expected,
            metric=model.metric,
            champion_score=score(expected, model.metric),
            challenger_score=score(run, model.metric),
            actor=actor,
            reason=reason,
        )


def challenger_succeeded(run: Run) -> Promotion | None:
    """A retrain of a model succeeded: with no champion yet it becomes the champion."""
    model = Model.objects.get(pk=run.model_id)
    if model.champion_id is not None:
        return None
    try:
        return _move(model, run, Move.PROMOTED, SYSTEM, "the model's first successful run", expected=None)
    except CannotMove:
        return None


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
