"""Built-in workflows: scikit-learn estimators behind preprocessing for categorical and missing values.

Each accepts its estimator's parameters through `custom_params`, and declares them from the
estimator's signature and its own parameter constraints (types, ranges, choices), so that a
request naming another key or a value of the wrong type is refused before it trains.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from sklearn.utils import _param_validation as constraints

from railyard_trainer import parameters
from railyard_trainer.stages import log
from railyard_trainer.workflows.base import CLASSIFICATION, REGRESSION, Workflow


def categorical_columns(frame: pd.DataFrame, features: list[str]) -> list[str]:
    return [c for c in features if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]


def object_caster() -> FunctionTransformer:
    """Categories as text, missing values kept missing: encoders want one type per column (strings,
    booleans and gaps mixed are refused). pandas' own `astype`, so that a saved model refers to no
    function of Railyard's and loads with scikit-learn and pandas alone."""
    return FunctionTransformer(pd.DataFrame.astype, kw_args={"dtype": "str"}, feature_names_out="one-to-one")


def one_hot_preprocessor(frame: pd.DataFrame, features: list[str]) -> ColumnTransformer:
    """Scaled, imputed numbers and one-hot categories: for linear models and neural networks."""
    categorical = categorical_columns(frame, features)
    numeric = [c for c in features if c not in categorical]
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(
                    object_caster(),
                    OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5),
                ),
                categorical,
            ),
        ]
    )


def ordinal_preprocessor(frame: pd.DataFrame, features: list[str]) -> ColumnTransformer:
    """Categories as ordinal codes, numbers as they are (NaN kept): for tree ensembles."""
    categorical = categorical_columns(frame, features)
    numeric = [c for c in features if c not in categorical]
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    return ColumnTransformer(
        [
            ("categorical", make_pipeline(object_caster(), encoder), categorical),
            ("numeric", "passthrough", numeric),
        ],
        verbose_feature_names_out=False,
    )


def estimator_parameters(estimator_class: type, defaults: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each parameter of the estimator's signature, with what it accepts (from scikit-learn's
    `_parameter_constraints`, else the default's type) and its default (`defaults` first)."""
    declared = getattr(estimator_class, "_parameter_constraints", {})
    found = {}
    for name, param in inspect.signature(estimator_class.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = defaults.get(name, param.default)
        kinds = [kind for constraint in declared.get(name, []) for kind in _kinds(constraint)]
        accepts = list({json.dumps(kind, sort_keys=True): kind for kind in kinds}.values())  # once each
        found[name] = {"default": parameters.json_value(default), "accepts": accepts or [_kind_of(default)]}
    return found


_CONSTRAINT_KINDS = {
    "boolean": [{"type": "boolean"}],
    "array-like": [{"type": "array"}],
    "random_state": [{"type": "integer", "min": 0}, {"type": "null"}],
    "verbose": [{"type": "integer"}, {"type": "boolean"}],
    None: [{"type": "null"}],
    bool: [{"type": "boolean"}],
    str: [{"type": "string"}],
    dict: [{"type": "object"}],
    list: [{"type": "array"}],
    tuple: [{"type": "array"}],
    numbers.Integral: [{"type": "integer"}],
    numbers.Real: [{"type": "number"}],
}


def _kinds(constraint: Any) -> list[dict[str, Any]]:
    """The JSON kinds a scikit-learn constraint admits; none for what JSON cannot hold (callables,
    loss objects) or what is hidden."""
    if isinstance(constraint, constraints.Hidden) or getattr(constraint, "hidden", False):
        return []
    if isinstance(constraint, constraints.Interval):
        kind: dict[str, Any] = {
            "type": "float" if constraint.type is constraints.RealNotInt else _number(constraint.type),
            "closed": constraint.closed,
        }
        kind.update({k: v for k, v in (("min", constraint.left), ("max", constraint.right)) if v is not None})
        return [kind]
    if isinstance(constraint, constraints.StrOptions):
        return [{"type": "string", "choices": sorted(constraint.options - (constraint.deprecated or set()))}]
    if isinstance(constraint, constraints.Options):
        # JSON has no infinity: a choice such as `np.inf` cannot be sent, so it is not offered.
        choices = sorted(c for c in constraint.options if math.isfinite(c))
        return [{"type": _number(constraint.type), "choices": choices}] if choices else []
    try:
        return _CONSTRAINT_KINDS.get(constraint, [])
    except TypeError:  # unhashable: no JSON kind
        return []


def _number(kind: type) -> str:
    return "integer" if issubclass(kind, numbers.Integral) else "number"


def _kind_of(default: Any) -> dict[str, Any]:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array")):
        if isinstance(default, kind):
            return {"type": name}
    return {"type": "any"}


class EstimatorWorkflow(Workflow):
    """A preprocessing step and a scikit-learn estimator whose parameters come from custom_params."""

    estimator_class: ClassVar[type]
    preprocessing: ClassVar[str] = "one_hot"
    #: The estimator's `verbose` at which it prints a line per iteration ("[k/N] …", "Iteration k,
    #: loss = …"), from which the run page's progress bar moves during training; None: it prints none.
    progress_verbosity: ClassVar[int | None] = None

    @classmethod
    def declared_parameters(cls) -> dict[str, dict[str, Any]] | None:
        if cls.parameters is not None:
            return super().declared_parameters()
        return estimator_parameters(cls.estimator_class, cls.default_params)

    def estimator_params(self) -> dict[str, Any]:
        accepted = self.estimator_class().get_params()
        params = {**self.default_params}
        ignored = []
        for key, value in self.custom_params.items():
            if key in accepted:
                params[key] = value
            else:
                ignored.append(key)
        if "random_state" in accepted and "random_state" not in params:
            params["random_state"] = self.seed
        if self.progress_verbosity is not None and "verbose" not in params:
            params["verbose"] = self.progress_verbosity
        if ignored:  # keys a subclass declared for its own code
            log(f"custom_params not used by {self.estimator_class.__name__}: {', '.join(ignored)}")
        return params

    def build(self, training_dataframe: pd.DataFrame) -> Pipeline:
        features = self.classifier_features
        if self.preprocessing == "ordinal":
            preprocess = ordinal_preprocessor(training_dataframe, features)
            n_categorical = len(categorical_columns(training_dataframe, features))
            estimator = self.estimator_class(**self.estimator_params())
            if "categorical_features" in estimator.get_params() and n_categorical:
                estimator.set_params(categorical_features=list(range(n_categorical)))
        else:
            preprocess = one_hot_preprocessor(training_dataframe, features)
            estimator = self.estimator_class(**self.estimator_params())
        return Pipeline([("preprocess", preprocess), ("model", estimator)])

    def train(self, training_dataframe: pd.DataFrame, holdout_dataframe: pd.DataFrame) -> Pipeline:
        pipeline = self.build(training_dataframe)
        planned = pipeline.named_steps["model"].get_params().get("max_iter")
        if self.progress_verbosity is not None and planned:
            log(f"train: up to {planned} iterations")
        pipeline.fit(training_dataframe[self.classifier_features], training_dataframe[self.label])
        return pipeline


class LogisticRegressionWorkflow(EstimatorWorkflow):
    name = "logistic_regression"
    task = CLASSIFICATION
    description = "L2-regularised logistic regression on scaled numbers and one-hot categories."
    estimator_class = LogisticRegression
    default_params: ClassVar[dict[str, Any]] = {"C": 1.0, "max_iter": 1000}


class GradientBoostingWorkflow(EstimatorWorkflow):
    name = "gradient_boosting"
    task = CLASSIFICATION
    description = "Histogram gradient boosting with native categorical and missing-value support."
    estimator_class = HistGradientBoostingClassifier
    progress_verbosity = 2
    preprocessing = "ordinal"
    default_params: ClassVar[dict[str, Any]] = {"max_iter": 100, "learning_rate": 0.1}


class RandomForestWorkflow(EstimatorWorkflow):
    name = "random_forest"
    task = CLASSIFICATION
    description = "A random forest on ordinal-coded categories; missing values handled by the trees."
    estimator_class = RandomForestClassifier
    preprocessing = "ordinal"
    default_params: ClassVar[dict[str, Any]] = {"n_estimators": 200, "min_samples_leaf": 5, "n_jobs": -1}


class NeuralNetworkWorkflow(EstimatorWorkflow):
    name = "neural_network"
    task = CLASSIFICATION
    description = "A multi-layer perceptron with early stopping on scaled numbers and one-hot categories."
    estimator_class = MLPClassifier
    progress_verbosity = 1
    default_params: ClassVar[dict[str, Any]] = {
        "hidden_layer_sizes": [64, 32],
        "early_stopping": True,
        "max_iter": 200,
    }

    def estimator_params(self) -> dict[str, Any]:
        params = super().estimator_params()
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        return params


class LinearRegressionWorkflow(EstimatorWorkflow):
    name = "linear_regression"
    task = REGRESSION
    description = "Ordinary least squares on scaled numbers and one-hot categories."
    estimator_class = LinearRegression


class GradientBoostingRegressorWorkflow(EstimatorWorkflow):
    name = "gradient_boosting_regressor"
    task = REGRESSION
    description = "Histogram gradient boosting for a numeric label."
    estimator_class = HistGradientBoostingRegressor
    progress_verbosity = 2
    preprocessing = "ordinal"
    default_params: ClassVar[dict[str, Any]] = {"max_iter": 100, "learning_rate": 0.1}
