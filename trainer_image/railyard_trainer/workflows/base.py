"""The workflow base class: users write `train`, Railyard does everything around it."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import pandas as pd

from railyard_trainer import parameters
from railyard_trainer.vocabulary import CLASSIFICATION, REGRESSION

__all__ = ["CLASSIFICATION", "REGRESSION", "Workflow"]


class Workflow:
    """Subclass, set `name`, `task` and `description`, and implement `train`.

    - `self.classifier_features`, `self.label`, `self.custom_params` and `self.seed` are set
      before `train`.
    - `train` returns a fitted estimator with `predict` (and `predict_proba` for classification)
      that accepts a dataframe of the classifier features.
    """

    name: ClassVar[str] = ""
    task: ClassVar[str] = CLASSIFICATION
    description: ClassVar[str] = ""
    #: Parameter defaults shown in the catalogue; `custom_params` override them.
    default_params: ClassVar[dict[str, Any]] = {}
    #: The parameters `custom_params` may hold (see `railyard_trainer.parameters`), e.g.
    #: `{"n_estimators": {"type": "integer", "min": 1, "default": 100}}`. Declared, a request with
    #: another key or a value of the wrong type is refused naming it; undeclared (None), anything goes.
    parameters: ClassVar[dict[str, Any] | None] = None

    def __init__(
        self,
        classifier_features: list[str],
        label: str,
        custom_params: dict[str, Any],
        seed: int = 0,
    ):
        self.classifier_features = classifier_features
        self.label = label
        self.custom_params = custom_params
        self.seed = seed

    def train(self, training_dataframe: pd.DataFrame, holdout_dataframe: pd.DataFrame) -> Any:
        raise NotImplementedError

    @classmethod
    def declared_parameters(cls) -> dict[str, dict[str, Any]] | None:
        """The long form of `parameters`, or None when the workflow declares none."""
        return None if cls.parameters is None else parameters.normalize(cls.parameters)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "task": cls.task,
            "description": cls.description or inspect.getdoc(cls) or "",
            "default_params": cls.default_params,
            "parameters": cls.declared_parameters(),
        }
