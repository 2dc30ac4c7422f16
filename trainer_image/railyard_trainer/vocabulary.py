"""The words of a training request and of its results, written once.

Sources and formats, filter predicates, holdout sampling functions and the default holdout
fraction, tasks, artifact names, the metric registry (each metric's task, which way is better,
its display name, and the primary metric of each task), and the statuses of runs and jobs with
the causes a job ends by (their transitions are `training.states`'). The trainer, Django's request contract,
the launch form, the pages and `railyard.js` (through `json_script`) all read them from here. It
imports nothing heavy, so that the web app can import it without pandas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

FILE, S3 = "file", "s3"
SOURCES = (FILE, S3)
FORMATS = ("parquet", "csv")

COMPARISONS = ("Gt", "GtEq", "Lt", "LtEq")
#: Predicates that take a list of values, and those that take none.
LIST_PREDICATES = ("IsIn", "NotIn")
VALUELESS_PREDICATES = ("IsNull", "NotNull")
PREDICATES = ("Eq", "NotEq", *COMPARISONS, *LIST_PREDICATES, *VALUELESS_PREDICATES)

DATE_RANGE, RANDOM = "DATE_RANGE", "RANDOM"
SAMPLING_FUNCTIONS = (DATE_RANGE, RANDOM)
DEFAULT_HOLDOUT_FRACTION = 0.2
#: How large a request may be: sources, column names (per source, and features), and filters. Past
#: them a request is refused with a 400 naming the field, before anything reads data.
MOST_SOURCES, MOST_NAMES, MOST_FILTERS = 20, 2000, 200
#: The score at or above which a binary model says "positive", unless `train.decision_threshold` says.
DEFAULT_DECISION_THRESHOLD = 0.5
#: More distinct decimal label values than this, and a classification workflow is refused: the label
#: is a measurement, not classes.
MAX_CLASSES_OF_DECIMALS = 50

#: What a workflow says it does, and what evaluation makes of it once it has seen the label.
CLASSIFICATION, REGRESSION = "classification", "regression"
BINARY, MULTICLASS = "binary", "multiclass"
WORKFLOW_TASKS = (CLASSIFICATION, REGRESSION)

#: The files a run's attempt leaves in the artifact store.
SPEC = "spec.json"
MODEL = "model.joblib"
METADATA = "metadata.json"
METRICS_FILE = "metrics.json"
EVALUATION = "evaluation.json"
HOLDOUT_SCORES = "holdout_scores.parquet"
LOG = "log.txt"
#: Written last by a trainer that succeeded (every artifact with its size and sha256), or on failure.
MANIFEST = "manifest.json"
#: The column of `holdout_scores.parquet` that ties each row back to its record: the values of
#: `data.id_column`, else the row's position in the first source as loaded.
ROW_ID = "row_id"
ERROR = "error.json"
#: A segmented request's files: its plan (the segments, their rows, how they are packed into jobs),
#: each segment model's comparison with the generic model, the table of them all, and which model
#: serves each segment value.
PLAN = "plan.json"
SEGMENT = "segment.json"
SEGMENTS = "segments.json"
ROUTING = "routing.json"
#: `train.segment_by`'s defaults, and how many segment models one request may ask for at most.
DEFAULT_MIN_SEGMENT_ROWS = 500
DEFAULT_MAX_SEGMENTS = 5000
MOST_SEGMENTS = 100_000
DEFAULT_SEGMENT_JOBS = 4
#: How much better than the generic model a segment's model must be, at the low end of the 95% interval
#: of the difference on its rows, to serve its segment: with hundreds of segments, some beat the generic
#: model by chance alone at a margin of zero.
DEFAULT_SEGMENT_MARGIN = 0.01
MOST_SEGMENT_JOBS = 100
#: How a composition (`compose` in place of `train`) combines its members' scores, and how many it may have.
COMPOSE_METHODS = ("mean", "weighted", "routed", "stacking")
MOST_MEMBERS = 20
#: The workflow name a composition's spec and metadata carry: it trains no workflow of its own.
COMPOSITION_WORKFLOW = "compose"
#: A composition's own artifact: its members' scores on its holdout beside its own, and a stacking layer's weights.
COMPOSITION = "composition.json"


class Status(StrEnum):
    """A status, shown capitalised."""

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class RunStatus(Status):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in RUN_TERMINAL

    @property
    def is_active(self) -> bool:
        return self in RUN_ACTIVE


class RunKind(Status):
    """What a run is: a single model, a segmented request (a parent), one of its children, or a composition."""

    SINGLE = "single"
    SEGMENTED = "segmented"  # the parent of a `train.segment_by` request: it plans, its children train
    GENERIC = "generic"  # the parent's model on all rows
    SEGMENT = "segment"  # the parent's model of one segment value
    COMPOSITION = "composition"  # trained runs combined (`compose`), trained no further


class Winner(Status):
    """Which model should serve a segment: its own, or the generic one."""

    SEGMENT = "segment"
    GENERIC = "generic"


class JobStatus(Status):
    PENDING = "pending"  # made for a run's attempt, not yet handed to the executor
    LAUNCHED = "launched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"  # the executor has no trace of it any more
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in JOB_TERMINAL


class Cause(StrEnum):
    """Why a job did not succeed (or why it waits), as the worker and smart retries read it."""

    OOM = "oom"
    DEADLINE = "deadline"
    BAD_DATA = "bad_data"
    CRASH = "crash"
    DISAPPEARED = "disappeared"
    CANCELLED = "cancelled"
    UNSCHEDULABLE = "unschedulable"
    IMAGE_PULL = "image_pull"
    REFUSED = "refused"

    @property
    def label(self) -> str:
        return CAUSE_LABELS[self]


CAUSE_LABELS = {
    Cause.OOM: "out of memory",
    Cause.DEADLINE: "over its time limit",
    Cause.BAD_DATA: "bad data",
    Cause.CRASH: "the trainer crashed",
    Cause.DISAPPEARED: "disappeared",
    Cause.CANCELLED: "cancelled",
    Cause.UNSCHEDULABLE: "no node can run it",
    Cause.IMAGE_PULL: "the image cannot be pulled",
    Cause.REFUSED: "the executor refused it",
}
RUN_TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
RUN_ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.SUBMITTED, RunStatus.RUNNING})
#: Launched and not finished.
RUN_IN_FLIGHT = frozenset({RunStatus.SUBMITTED, RunStatus.RUNNING})
JOB_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.LOST, JobStatus.CANCELLED})
#: Handed to an executor and not finished: what a worker observes.
JOB_IN_FLIGHT = frozenset({JobStatus.LAUNCHED, JobStatus.RUNNING})
JOB_ACTIVE = frozenset({JobStatus.PENDING, *JOB_IN_FLIGHT})


def choices(words: type[StrEnum]) -> list[tuple[str, str]]:
    """A status enum as a model field's choices."""
    return [(word.value, word.label) for word in words]


@dataclass(frozen=True)
class Metric:
    name: str
    display: str
    higher_is_better: bool
    #: The tasks whose evaluation reports it.
    tasks: tuple[str, ...]


METRICS = {
    metric.name: metric
    for metric in (
        Metric("roc_auc", "ROC AUC", True, (BINARY,)),
        Metric("average_precision", "Average precision", True, (BINARY,)),
        Metric("log_loss", "Log loss", False, (BINARY, MULTICLASS)),
        Metric("brier", "Brier score", False, (BINARY,)),
        Metric("accuracy", "Accuracy", True, (BINARY, MULTICLASS)),
        Metric("precision", "Precision", True, (BINARY,)),
        Metric("recall", "Recall", True, (BINARY,)),
        Metric("f1", "F1", True, (BINARY,)),
        # At the operating points fraud and risk teams use: the largest true-positive rate among ROC
        # points whose false-positive rate is at most 1% / 5%, and the precision among the ⌈1%⌉ / ⌈5%⌉
        # highest-scored holdout rows.
        Metric("recall_at_fpr_1pct", "Recall at 1% FPR", True, (BINARY,)),
        Metric("recall_at_fpr_5pct", "Recall at 5% FPR", True, (BINARY,)),
        Metric("precision_at_top_1pct", "Precision in the top 1%", True, (BINARY,)),
        Metric("precision_at_top_5pct", "Precision in the top 5%", True, (BINARY,)),
        Metric("macro_f1", "Macro F1", True, (MULTICLASS,)),
        Metric("rmse", "RMSE", False, (REGRESSION,)),
        Metric("mae", "MAE", False, (REGRESSION,)),
        Metric("r2", "R²", True, (REGRESSION,)),
    )
}


def task_metrics(task: str) -> tuple[str, ...]:
    """The metrics the trainer reports for a task."""
    return tuple(name for name, metric in METRICS.items() if task in metric.tasks)


#: The one number that ranks models of a task, and of a workflow's task.
PRIMARY_METRIC = {BINARY: "roc_auc", MULTICLASS: "macro_f1", REGRESSION: "r2"}
PRIMARY_WORKFLOW_METRIC = {CLASSIFICATION: "roc_auc", REGRESSION: "r2"}


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric is better (unknown metrics: yes)."""
    return METRICS[name].higher_is_better if name in METRICS else True


def for_browser() -> dict:
    """What `railyard.js` needs of this vocabulary, for `json_script`."""
    return {
        "predicates": list(PREDICATES),
        "list_predicates": list(LIST_PREDICATES),
        "valueless_predicates": list(VALUELESS_PREDICATES),
        "metrics": {name: asdict(metric) for name, metric in METRICS.items()},
    }


# Continuous retraining: schedules, their fires, and champion/challenger promotion.
#: The comparison a challenger's trainer writes beside its evaluation (see `railyard_trainer.promotion`).
COMPARISON = "comparison.json"


class Concurrency(Status):
    """What a schedule's fire does while the run of its previous fire is still active."""

    FORBID = "forbid"  # skip this fire (recorded as a skipped fire)
    REPLACE = "replace"  # cancel the active run, then start
    ALLOW = "allow"  # start beside it


class Catchup(Status):
    """What a schedule fires for the times it missed while no scheduler ran."""

    LATEST = "latest"  # one fire, for the most recent missed time
    NONE = "none"  # nothing; the next time fires as usual


class FireKind(Status):
    SCHEDULED = "scheduled"
    CATCHUP = "catchup"  # the most recent time missed while no scheduler ran
    MANUAL = "manual"  # "run now"
    BACKFILL = "backfill"


class FireOutcome(Status):
    PENDING = "pending"  # a backfill's fire, waiting for room under its parallelism
    STARTED = "started"  # it made a run
    SKIPPED = "skipped"  # the previous run was still active (concurrency: forbid)
    FAILED = "failed"  # the model's request did not validate at that time; the reason says why


class PromotionMode(StrEnum):
    AUTO = "auto"  # promote when the interval's lower bound clears min_improvement and guardrails pass
    APPROVAL = "approval"  # wait for a person to promote or reject
    SHADOW = "shadow"  # record the comparison only


class Decision(Status):
    """What a challenger's comparison concluded."""

    PROMOTED = "promoted"
    KEPT = "kept"
    AWAITING_APPROVAL = "awaiting_approval"
    SHADOW = "shadow"


class Move(Status):
    """A change of a model's champion (or a challenger turned down), as its history records it."""

    PROMOTED = "promoted"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
