"""The request's and the results' words live once, in `railyard_trainer.vocabulary`; everything else
agrees with it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor

from railyard_trainer import data, evaluation, holdout, schema, sources
from railyard_trainer import vocabulary as v
from training import compare


def test_it_imports_nothing_heavy():
    probe = (
        "import sys, railyard_trainer.vocabulary, railyard_trainer.schema, railyard_trainer.parameters; "
        "print(sorted(m for m in ('pandas', 'django') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_trainer_implements_exactly_the_words_of_the_request():
    assert tuple(data.PREDICATES) == v.PREDICATES
    assert tuple(holdout.STRATEGIES) == v.SAMPLING_FUNCTIONS
    assert tuple(sources.FORMATS) == v.FORMATS
    assert schema.PREDICATES is v.PREDICATES  # the schema reads them, it does not repeat them


@pytest.mark.parametrize(
    ("task", "truth", "estimator"),
    [
        (v.BINARY, [0, 1] * 20, DummyClassifier(strategy="prior")),
        (v.MULTICLASS, [0, 1, 2] * 14, DummyClassifier(strategy="prior")),
        (v.REGRESSION, list(np.linspace(0, 1, 40)), DummyRegressor()),
    ],
)
def test_each_task_reports_the_metrics_the_registry_lists_for_it(task, truth, estimator):
    X = pd.DataFrame({"x": np.arange(len(truth), dtype=float)})
    y = pd.Series(truth, name="label")
    estimator.fit(X, y)
    reported = evaluation.evaluate(task, estimator, X, y, seed=0).metrics
    assert set(reported) == set(v.task_metrics(task))
    assert v.PRIMARY_METRIC[task] in reported


def test_the_comparison_ranks_by_the_registrys_direction():
    assert v.higher_is_better("roc_auc")
    assert not v.higher_is_better("log_loss")
    runs = [
        type("R", (), {"pk": 1, "metrics": {"roc_auc": 0.8, "log_loss": 0.3}})(),
        type("R", (), {"pk": 2, "metrics": {"roc_auc": 0.9, "log_loss": 0.4}})(),
    ]
    best = {
        row["name"]: [cell["value"] for cell in row["cells"] if cell["best"]] for row in compare.metrics_table(runs)
    }
    assert best == {"log_loss": [0.3], "roc_auc": [0.9]}


@pytest.mark.usefixtures("workflows")
def test_the_launch_page_hands_the_browser_its_words(client, alice):
    client.force_login(alice)
    page = client.get("/runs/new").content.decode()
    start = page.index('<script id="railyard-vocabulary" type="application/json">') + len(
        '<script id="railyard-vocabulary" type="application/json">'
    )
    handed = json.loads(page[start : page.index("</script>", start)])
    assert handed["predicates"] == list(v.PREDICATES)
    assert handed["metrics"]["log_loss"]["higher_is_better"] is False


def test_the_records_do_not_import_the_state_machine():
    """The records read statuses from the vocabulary and import nothing of Railyard's but each other:
    only states.py, which moves statuses, and the services above it import them."""
    import ast
    from pathlib import Path

    import training

    imported = set()
    for module in (Path(training.__file__).parent / "models").glob("*.py"):
        tree = ast.parse(module.read_text())
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name for name in imported if name.startswith("training.")} <= {
        f"training.models.{module}" for module in ("catalogue", "runs", "teams", "tokens", "retraining", "webhooks")
    }
    assert "railyard_trainer.vocabulary" in imported
