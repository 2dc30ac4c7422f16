"""Kubernetes objects for a job, built by pure functions: plain inputs in, plain dicts out.

The executor only sends what these return; tests compare them directly and validate them against
the Kubernetes schemas. A Job is assembled from one function per concern: its volumes, its
security, where it may be scheduled, and its resources.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from railyard_trainer.errors import EXIT_BAD_DATA, EXIT_OUT_OF_MEMORY
from training.executors.base import JobInputs

MANAGED_BY = "railyard"
CONTAINER = "trainer"
SPEC_DIR = "/etc/railyard"
SCRATCH_DIR = "/tmp"
TRAINER_UID = 10001
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB_ID = "railyard.dev/job-id"
LABEL_RUN_ID = "railyard.dev/run-id"
LABEL_ATTEMPT = "railyard.dev/attempt"
LABEL_PROJECT = "railyard.dev/project"
LABEL_WORKFLOW = "railyard.dev/workflow"
#: Selects every object Railyard manages.
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
ANNOTATION_RUN_IDS = "railyard.dev/run-ids"
ANNOTATION_COMPUTE_RESOURCE = "railyard.dev/compute-resource"


@dataclass(frozen=True)
class ClusterSettings:
    """How this installation runs Jobs, the same for every job."""

    namespace: str
    backoff_limit: int = 1
    ttl_seconds_after_finished: int = 86400
    service_account: str = ""


def job_name(job_id: int) -> str:
    """`railyard-job-<id>`: derived from the job alone, so a repeated launch finds its Job."""
    return f"railyard-job-{job_id}"


def label_value(value: str) -> str:
    """A valid label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63]
    return cleaned.strip("._-")


def labels(inputs: JobInputs) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB_ID: str(inputs.job_id),
        LABEL_RUN_ID: str(inputs.run_id),
        LABEL_ATTEMPT: str(inputs.attempt),
        LABEL_PROJECT: label_value(inputs.project),
        LABEL_WORKFLOW: label_value(inputs.workflow),
    }


def selector(**wanted: str) -> str:
    """A label selector for Railyard's objects, narrowed to the given labels."""
    return ",".join([SELECTOR, *(f"{key}={value}" for key, value in wanted.items())])


def spec_config_map(inputs: JobInputs, cluster: ClusterSettings, owner: dict[str, Any]) -> dict[str, Any]:
    """The resolved spec the trainer mounts, owned by its created Job (deleting the Job deletes it)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": job_name(inputs.job_id),
            "namespace": cluster.namespace,
            "labels": labels(inputs),
            "ownerReferences": [owner_reference(owner)],
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


def volumes(inputs: JobInputs) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the trainer's mounts of them: its spec, scratch space, and host folders
    for a `file://` store and file sources (read-only).

    Host folders serve single-node clusters (kind, minikube, k3s); production uses object storage.
    """
    host: list[tuple[str, str, bool]] = []
    written = [uri.removeprefix("file://") for uri in inputs.outputs if uri.startswith("file://")]
    if written:  # one folder holding every folder the trainer writes (a packed job's runs are siblings)
        host.append(("artifacts", os.path.commonpath(written), False))
    features = inputs.request_spec["data"]["features"]
    folders = sorted({str(PurePosixPath(s["path"]).parent) for s in features if s["source"] == "file"})
    for folder in folders:
        if not any(folder == path or folder.startswith(path + "/") for _, path, _ in host):
            host.append((f"data-{len(host)}", folder, True))
    pod_volumes: list[dict[str, Any]] = [
        {"name": "spec", "configMap": {"name": job_name(inputs.job_id)}},
        {"name": "scratch", "emptyDir": {}},
        *(
            {"name": vol, "hostPath": {"path": path, "type": "Directory" if read_only else "DirectoryOrCreate"}}
            for vol, path, read_only in host
        ),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        *({"name": vol, "mountPath": path, "readOnly": read_only} for vol, path, read_only in host),
    ]
    return pod_volumes, mounts


def security() -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod's and the trainer container's security contexts: non-root, nothing to escalate to."""
    pod = {
        "runAsNonRoot": True,
        "runAsUser": TRAINER_UID,
        "runAsGroup": TRAINER_UID,
        "fsGroup": TRAINER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return pod, container


def scheduling(profile: dict, cluster: ClusterSettings) -> dict[str, Any]:
    """Where the pod may run and as whom: the compute profile's node pool, and the service account."""
    placement: dict[str, Any] = {}
    if cluster.service_account:
        placement["serviceAccountName"] = cluster.service_account
    if profile.get("node_selector"):
        placement["nodeSelector"] = dict(profile["node_selector"])
    if profile.get("tolerations"):
        placement["tolerations"] = [dict(t) for t in profile["tolerations"]]
    if profile.get("affinity"):
        placement["affinity"] = profile["affinity"]
    return placement


def resources(profile: dict) -> dict[str, dict[str, str]]:
    """The trainer's requests and limits, as the compute profile sets them."""
    return {key: dict(profile[key]) for key in ("requests", "limits") if profile.get(key)}


def environment(inputs: JobInputs) -> list[dict[str, str]]:
    return [
        {"name": "RAILYARD_RUN_ID", "value": str(inputs.run_id)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "HOME", "value": SCRATCH_DIR},
        {"name": "TMPDIR", "value": SCRATCH_DIR},
        *({"name": name, "value": value} for name, value in sorted(inputs.env.items())),
    ]


def job(inputs: JobInputs, cluster: ClusterSettings) -> dict[str, Any]:
    """The batch/v1 Job that runs the trainer for a job."""
    pod_volumes, mounts = volumes(inputs)
    pod_security, container_security = security()
    command = ["python", "-m", "railyard_trainer", "train", "--spec", f"{SPEC_DIR}/spec.json"]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": inputs.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*command, "--out", inputs.artifact_uri],
        "env": environment(inputs),
        "resources": resources(inputs.profile),
        "volumeMounts": mounts,
        "securityContext": container_security,
    }
    if inputs.secrets:  # the project's credentials, and no other project's
        container["envFrom"] = [{"secretRef": {"name": secret}} for secret in inputs.secrets]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_security,
        "containers": [container],
        "volumes": pod_volumes,
        **scheduling(inputs.profile, cluster),
    }
    job_labels = labels(inputs)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(inputs.job_id),
            "namespace": cluster.namespace,
            "labels": job_labels,
            "annotations": {
                ANNOTATION_COMPUTE_RESOURCE: inputs.compute_resource,
                ANNOTATION_RUN_IDS: ",".join(map(str, inputs.run_ids or (inputs.run_id,))),
            },
        },
        "spec": {
            "backoffLimit": cluster.backoff_limit,
            "activeDeadlineSeconds": inputs.timeout_seconds,
            "ttlSecondsAfterFinished": cluster.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    # A node drained or preempted under the trainer is not the trainer's failure.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    # Bad data fails the same way every time: do not retry it.
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_BAD_DATA]},
                    },
                    # So does running out of memory on the same profile: a smart retry picks a larger one.
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_OUT_OF_MEMORY],
                        },
                    },
                ]
            },
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }


#: Marks a Job that reads an image's workflow catalogue (it carries no job of Railyard's).
LABEL_PURPOSE = "railyard.dev/purpose"
CATALOGUE = "catalogue"


def catalogue_job(image: str, name: str, cluster: ClusterSettings) -> dict[str, Any]:
    """The Job that prints an image's workflows (`python -m railyard_trainer workflows --json`): no data,
    no credentials, no volumes but its scratch space, a minute to do it."""
    pod_security, container_security = security()
    container = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "railyard_trainer", "workflows", "--json"],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
        "securityContext": container_security,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cluster.namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PURPOSE: CATALOGUE},
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 300,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PURPOSE: CATALOGUE}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security,
                    "containers": [container],
                    "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }
