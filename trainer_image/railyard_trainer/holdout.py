"""Holdout strategies: split the modelling frame into training and holdout rows.

A segmented request (`train.segment_by`) samples its random holdout within each segment value (and
within each label value too when it stratifies): every segment holds out the request's fraction of
its own rows, and the generic model and each segment's model see the same split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from railyard_trainer.data import in_range
from railyard_trainer.errors import BadDataError
from railyard_trainer.spec import TrainSpec
from railyard_trainer.vocabulary import DATE_RANGE, RANDOM

Split = tuple[pd.DataFrame, pd.DataFrame]


def split_by_date_range(frame: pd.DataFrame, spec: TrainSpec) -> Split:
    """Holdout = rows in the holdout range; training = rows before it (never rows after)."""
    holdout_range = spec.holdout.date_range
    if holdout_range is None or spec.date_column is None:
        raise BadDataError("holdout_sampling: DATE_RANGE needs a date_range and a date_column")
    dates = frame[spec.date_column]
    holdout_mask = in_range(dates, holdout_range)
    training_mask = dates < pd.Timestamp(holdout_range.start)
    return frame.loc[training_mask], frame.loc[holdout_mask]


def split_randomly(frame: pd.DataFrame, spec: TrainSpec) -> Split:
    holdout = spec.holdout
    if not 0 < holdout.fraction < 1:
        raise BadDataError(f"holdout_sampling.fraction must be between 0 and 1, not {holdout.fraction}")
    if spec.segment_by:
        return split_within(frame, spec, spec.segment_by["column"])
    stratify = None
    if holdout.stratify:
        column = spec.label if holdout.stratify is True else holdout.stratify
        if column not in frame.columns:
            raise BadDataError(f"holdout_sampling.stratify: column {column!r} is not loaded")
        stratify = frame[column]
    try:
        training, held = train_test_split(
            frame, test_size=holdout.fraction, random_state=holdout.seed, stratify=stratify
        )
    except ValueError as exc:
        raise BadDataError(f"holdout_sampling: cannot split {len(frame)} rows: {exc}") from exc
    return training.sort_index(), held.sort_index()


def split_within(frame: pd.DataFrame, spec: TrainSpec, column: str) -> Split:
    """The fraction held out of each value of `column` (and of each label value within it when the
    request stratifies): rows drawn by seeded random keys, the round(fraction * rows) lowest of each group."""
    holdout = spec.holdout
    groups = [column]
    if holdout.stratify:
        groups.append(spec.label if holdout.stratify is True else holdout.stratify)
    for name in groups:
        if name not in frame.columns:
            raise BadDataError(f"column {name!r} is not loaded")
    keys = pd.Series(np.random.default_rng(holdout.seed).random(len(frame)), index=frame.index)
    by = [frame[name] for name in groups]
    rank = keys.groupby(by, dropna=False, sort=False).rank(method="first")
    size = keys.groupby(by, dropna=False, sort=False).transform("size")
    held = rank <= np.round(size * holdout.fraction)
    return frame.loc[~held], frame.loc[held]


STRATEGIES: dict[str, Callable[[pd.DataFrame, TrainSpec], Split]] = {
    DATE_RANGE: split_by_date_range,
    RANDOM: split_randomly,
}


def split(frame: pd.DataFrame, spec: TrainSpec) -> Split:
    strategy = STRATEGIES.get(spec.holdout.sampling_function)
    if strategy is None:
        raise BadDataError(f"unknown holdout sampling_function {spec.holdout.sampling_function!r}")
    training, held = strategy(frame, spec)
    if training.empty or held.empty:
        raise BadDataError(
            f"the holdout split left {len(training)} training and {len(held)} holdout rows; both need at least one"
        )
    return training.reset_index(drop=True), held.reset_index(drop=True)
