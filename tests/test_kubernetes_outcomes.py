"""What a Kubernetes Job and its pods say about a job: the pure mapping, case by case."""

from __future__ import annotations

import pytest

from training.executors import JobPhase, Outcome
from training.executors.kubernetes.outcomes import outcome
from training.states import Cause

NAME = "railyard-job-7"


def job(*conditions: tuple[str, str, str], deadline: int = 3600) -> dict:
    """A Job whose status holds the given (type, reason, message) conditions."""
    return {
        "metadata": {"name": NAME},
        "spec": {"activeDeadlineSeconds": deadline},
        "status": {"conditions": [{"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions]},
    }


def pod(phase: str = "Pending", created: str = "2026-11-25T10:00:00Z", **status: object) -> dict:
    return {"metadata": {"creationTimestamp": created}, "status": {"phase": phase, **status}}


def waiting(reason: str, message: str = "") -> dict:
    return pod(containerStatuses=[{"state": {"waiting": {"reason": reason, "message": message}}}])


def terminated(reason: str, where: str = "state", code: int = 137) -> dict:
    return pod("Failed", containerStatuses=[{where: {"terminated": {"reason": reason, "exitCode": code}}}])


UNSCHEDULED = pod(
    conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes have a GPU"}
    ]
)

CASES = [
    pytest.param(
        None, [], True, Outcome(JobPhase.PENDING, message="waiting for the Job to appear"), id="not-listed-yet"
    ),
    pytest.param(
        None,
        [],
        False,
        Outcome(JobPhase.FAILED, Cause.DISAPPEARED, f"the Job {NAME} was deleted outside Railyard"),
        id="gone",
    ),
    pytest.param(job(("Complete", "", "")), [], False, Outcome(JobPhase.SUCCEEDED, exit_code=0), id="complete"),
    pytest.param(
        job(("SuccessCriteriaMet", "", "")), [], False, Outcome(JobPhase.SUCCEEDED, exit_code=0), id="success-criteria"
    ),
    pytest.param(
        job(("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")),
        [],
        False,
        Outcome(
            JobPhase.FAILED,
            Cause.DEADLINE,
            "the run exceeded its time limit of 3600 seconds "
            "(DeadlineExceeded: Job was active longer than specified deadline)",
        ),
        id="deadline",
    ),
    pytest.param(
        job(("FailureTarget", "PodFailurePolicy", "Container trainer exited with 65")),
        [],
        False,
        Outcome(
            JobPhase.FAILED,
            Cause.BAD_DATA,
            "the trainer reported that the spec or data cannot train "
            "(PodFailurePolicy: Container trainer exited with 65)",
        ),
        id="bad-data",
    ),
    pytest.param(
        job(("Failed", "BackoffLimitExceeded", "")),
        [terminated("Error")],
        False,
        Outcome(
            JobPhase.FAILED,
            Cause.CRASH,
            "the trainer failed on every attempt the Job allows (BackoffLimitExceeded: no message)",
        ),
        id="crash",
    ),
    pytest.param(
        job(("Failed", "Evicted", "")),
        [],
        False,
        Outcome(JobPhase.FAILED, Cause.CRASH, "the Job failed (Evicted: no message)"),
        id="unknown-failure",
    ),
    pytest.param(
        job(("Failed", "BackoffLimitExceeded", "")),
        [terminated("OOMKilled")],
        False,
        Outcome(
            JobPhase.FAILED,
            Cause.OOM,
            "the trainer ran out of memory (OOMKilled) with a limit of 8Gi on compute resource 'cpu'; "
            "a larger profile may help",
        ),
        id="oom",
    ),
    pytest.param(
        job(("Failed", "BackoffLimitExceeded", "")),
        [terminated("OOMKilled", where="lastState")],
        False,
        Outcome(
            JobPhase.FAILED,
            Cause.OOM,
            "the trainer ran out of memory (OOMKilled) with a limit of 8Gi on compute resource 'cpu'; "
            "a larger profile may help",
        ),
        id="oom-before-a-restart",
    ),
    pytest.param(
        job(("FailureTarget", "PodFailurePolicy", "Container trainer exited with 71")),
        [terminated("Error", code=71)],
        False,
        Outcome(
            JobPhase.FAILED,
            Cause.OOM,
            "the trainer ran out of memory (MemoryError) with a limit of 8Gi on compute resource 'cpu'; "
            "a larger profile may help",
        ),
        id="memory-error",
    ),
    pytest.param(job(), [pod("Running")], False, Outcome(JobPhase.RUNNING), id="running"),
    pytest.param(
        job(),
        [],
        False,
        Outcome(JobPhase.PENDING, None, "waiting for the trainer's pod to start"),
        id="no-pod-yet",
    ),
    pytest.param(
        job(),
        [UNSCHEDULED],
        False,
        Outcome(
            JobPhase.PENDING,
            Cause.UNSCHEDULABLE,
            "no node can run the trainer yet (Unschedulable: 0/3 nodes have a GPU)",
        ),
        id="unschedulable",
    ),
    pytest.param(
        job(),
        [waiting("ImagePullBackOff", 'Back-off pulling image "x"')],
        False,
        Outcome(
            JobPhase.PENDING,
            Cause.IMAGE_PULL,
            'the trainer image cannot be pulled (ImagePullBackOff: Back-off pulling image "x")',
        ),
        id="image-pull",
    ),
    pytest.param(
        job(),
        [waiting("CreateContainerConfigError", 'secret "s3" not found')],
        False,
        Outcome(
            JobPhase.PENDING,
            Cause.REFUSED,
            "the trainer container is misconfigured (a missing Secret or ConfigMap?) "
            '(CreateContainerConfigError: secret "s3" not found)',
        ),
        id="config-error",
    ),
    pytest.param(
        job(),
        [
            waiting("ErrImagePull", "old"),
            {**UNSCHEDULED, "metadata": {"creationTimestamp": "2026-11-25T11:00:00Z"}},
        ],
        False,
        Outcome(
            JobPhase.PENDING,
            Cause.UNSCHEDULABLE,
            "no node can run the trainer yet (Unschedulable: 0/3 nodes have a GPU)",
        ),
        id="the-newest-pod-speaks",
    ),
]


@pytest.mark.parametrize(("found", "pods", "in_grace", "expected"), CASES)
def test_a_jobs_state_maps_to_one_outcome(found, pods, in_grace, expected):
    seen = outcome(found, pods, name=NAME, compute_resource="cpu", memory_limit="8Gi", in_grace=in_grace)
    assert seen == expected
