"""Kubernetes objects for a run, built by pure functions: inputs in, plain dicts out.

The executor only sends what these return; tests compare them directly and validate them
against the Kubernetes schemas.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from railyard_trainer.errors import EXIT_BAD_DATA

MANAGED_BY = "railyard"
CONTAINER = "trainer"
SPEC_DIR = "/etc/railyard"
SCRATCH_DIR = "/tmp"
TRAINER_UID = 10001
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN_ID = "railyard.dev/run-id"
LABEL_ATTEMPT = "railyard.dev/attempt"
LABEL_PROJECT = "railyard.dev/project"
LABEL_WORKFLOW = "railyard.dev/workflow"
#: Selects every object Railyard manages.
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


@dataclass(frozen=True)
class JobInputs:
    """Everything a run's Job depends on, so that building it needs nothing else."""

    run_id: int
    attempt: int
    project: str
    workflow: str
    spec: dict
    artifact_uri: str
    compute_resource: str
    profile: dict
    image: str
    namespace: str
    timeout_seconds: int
    backoff_limit: int = 1
    ttl_seconds_after_finished: int = 86400
    env_from_secrets: list[str] = field(default_factory=list)
    service_account: str = ""
    #: Plain settings for the trainer (a region, an endpoint); never credentials.
    env: dict[str, str] = field(default_factory=dict)


def job_name(run_id: int, attempt: int) -> str:
    """`railyard-run-<id>-<attempt>`: stable for one attempt, so a repeated launch finds its Job."""
    return f"railyard-run-{run_id}-{attempt}"


def label_value(value: str) -> str:
    """A valid label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63]
    return cleaned.strip("._-")


def labels(inputs: JobInputs) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_RUN_ID: str(inputs.run_id),
        LABEL_ATTEMPT: str(inputs.attempt),
        LABEL_PROJECT: label_value(inputs.project),
        LABEL_WORKFLOW: label_value(inputs.workflow),
    }


def spec_config_map(inputs: JobInputs) -> dict[str, Any]:
    """The resolved spec, mounted into the trainer; the Job becomes its owner once it exists."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": job_name(inputs.run_id, inputs.attempt),
            "namespace": inputs.namespace,
            "labels": labels(inputs),
        },
        "data": {"spec.json": json.dumps(inputs.spec, sort_keys=True)},
    }


def owner_reference(job: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to a created Job, so deleting the Job deletes what it owns."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job["metadata"]["name"],
        "uid": job["metadata"]["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }


def _host_paths(inputs: JobInputs) -> list[tuple[str, str, bool]]:
    """Host folders to mount at the same path: the `file://` store (read-write) and file sources (read-only).

    This serves single-node clusters (kind, minikube, k3s); production uses object storage.
    """
    mounts: list[tuple[str, str, bool]] = []
    if inputs.artifact_uri.startswith("file://"):
        runs_root = PurePosixPath(inputs.artifact_uri.removeprefix("file://")).parent
        mounts.append(("artifacts", str(runs_root), False))
    folders = sorted(
        {str(PurePosixPath(s["path"]).parent) for s in inputs.spec["data"]["features"] if s["source"] == "file"}
    )
    for folder in folders:
        if not any(folder == path or folder.startswith(path + "/") for _, path, _ in mounts):
            mounts.append((f"data-{len(mounts)}", folder, True))
    return mounts


def _resources(profile: dict) -> dict[str, dict[str, str]]:
    return {key: dict(profile[key]) for key in ("requests", "limits") if profile.get(key)}


def job(inputs: JobInputs) -> dict[str, Any]:
    """The batch/v1 Job that runs the trainer for one attempt of a run."""
    name = job_name(inputs.run_id, inputs.attempt)
    host_paths = _host_paths(inputs)
    volumes: list[dict[str, Any]] = [
        {"name": "spec", "configMap": {"name": name}},
        {"name": "scratch", "emptyDir": {}},
        *(
            {"name": vol, "hostPath": {"path": path, "type": "Directory" if read_only else "DirectoryOrCreate"}}
            for vol, path, read_only in host_paths
        ),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        *({"name": vol, "mountPath": path, "readOnly": read_only} for vol, path, read_only in host_paths),
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": inputs.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "python",
            "-m",
            "railyard_trainer",
            "train",
            "--spec",
            f"{SPEC_DIR}/spec.json",
            "--out",
            inputs.artifact_uri,
        ],
        "env": [
            {"name": "RAILYARD_RUN_ID", "value": str(inputs.run_id)},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            {"name": "HOME", "value": SCRATCH_DIR},
            {"name": "TMPDIR", "value": SCRATCH_DIR},
            *({"name": name, "value": value} for name, value in sorted(inputs.env.items())),
        ],
        "resources": _resources(inputs.profile),
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if inputs.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": secret}} for secret in inputs.env_from_secrets]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            "fsGroup": TRAINER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if inputs.service_account:
        pod_spec["serviceAccountName"] = inputs.service_account
    if inputs.profile.get("node_selector"):
        pod_spec["nodeSelector"] = dict(inputs.profile["node_selector"])
    if inputs.profile.get("tolerations"):
        pod_spec["tolerations"] = [dict(t) for t in inputs.profile["tolerations"]]
    if inputs.profile.get("affinity"):
        pod_spec["affinity"] = inputs.profile["affinity"]
    job_labels = labels(inputs)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": inputs.namespace,
            "labels": job_labels,
            "annotations": {"railyard.dev/compute-resource": inputs.compute_resource},
        },
        "spec": {
            "backoffLimit": inputs.backoff_limit,
            "activeDeadlineSeconds": inputs.timeout_seconds,
            "ttlSecondsAfterFinished": inputs.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    # A node drained or preempted under the trainer is not the trainer's failure.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    # Bad data fails the same way every time: do not retry it.
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_BAD_DATA]},
                    },
                ]
            },
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }
