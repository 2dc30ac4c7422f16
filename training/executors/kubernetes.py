"""The Kubernetes executor: each attempt of a run is a batch/v1 Job built by `training.manifests`.

- The cluster is found through the in-cluster service account, else KUBECONFIG (or ~/.kube/config).
- `observe` lists Railyard's Jobs and pods once per pass (label selector, paginated), not per run.
- API errors never crash the worker: 5xx, 429 and timeouts are retried with backoff and then
  reported as `ExecutorUnavailable` (the worker tries again next pass); 403 and 422 become a
  failed run with the reason in words.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import urllib3
from django.utils import timezone
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from training import manifests
from training.conf import railyard
from training.executors.base import (
    TRAINER_SETTINGS,
    Executor,
    ExecutorError,
    ExecutorUnavailable,
    JobPhase,
    JobState,
    profile_cpus,
    trainer_environment,
)

if TYPE_CHECKING:
    from training.models import Run

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_DELAYS = (0.2, 0.5, 1.0)
PAGE_SIZE = 200
#: Container states that keep a pod from ever starting, with what a person should do about them.
START_FAILURES = {
    "ErrImagePull": "the trainer image cannot be pulled",
    "ImagePullBackOff": "the trainer image cannot be pulled",
    "InvalidImageName": "the trainer image name is invalid",
    "CreateContainerConfigError": "the trainer container is misconfigured (a missing Secret or ConfigMap?)",
}
JOB_FAILURES = {
    "BackoffLimitExceeded": "the trainer failed on every attempt the Job allows",
    "DeadlineExceeded": "the run exceeded its time limit",
    "PodFailurePolicy": "the trainer reported that the spec or data cannot train",
}


class KubernetesAPIError(ExecutorError):
    """The cluster refused a request for a reason retrying will not fix (403, 422, …)."""


def load_api_client() -> client.ApiClient:
    """The ecosystem's conventions: in-cluster first, then KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()
    except ConfigException:
        try:
            # The client reads KUBECONFIG once at import; read it now so that it can change.
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
        except (ConfigException, OSError) as exc:
            raise ExecutorUnavailable(f"no Kubernetes cluster is configured (in-cluster or KUBECONFIG): {exc}") from exc
    return client.ApiClient()


def _explain(exc: ApiException, what: str) -> str:
    if exc.status == 403:
        return (
            f"Railyard's service account may not {what} in namespace {railyard.k8s_namespace!r} "
            "(403 Forbidden); check its Role in deploy/base/rbac.yaml"
        )
    return f"the cluster refused to {what} ({exc.status} {exc.reason}): {_message(exc)}"


def _message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body or "{}").get("message") or str(exc.reason)
    except ValueError:
        return str(exc.body or exc.reason)


def _conditions(obj: Any) -> dict[str, Any]:
    return {c.type: c for c in (obj.status.conditions or []) if c.status == "True"} if obj.status else {}


def _has_labels(obj: Any, wanted: dict[str, str]) -> bool:
    labels = obj.metadata.labels or {}
    return all(labels.get(k) == v for k, v in wanted.items())


class KubernetesExecutor(Executor):
    name = "kubernetes"
    enforces_deadline = True

    def __init__(self, api_client: client.ApiClient | None = None):
        self._api_client = api_client

    @property
    def api_client(self) -> client.ApiClient:
        if self._api_client is None:
            self._api_client = load_api_client()
        return self._api_client

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api_client)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def namespace(self) -> str:
        return railyard.k8s_namespace

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the API, retrying what may pass (5xx, 429, timeouts, resets) with backoff."""
        kwargs.setdefault("_request_timeout", railyard.k8s_request_timeout)
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                return fn(*args, **kwargs)
            except ApiException as exc:
                if exc.status not in (429, 500, 502, 503, 504):
                    raise
                problem = f"{exc.status} {exc.reason}"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if delay is None:
                raise ExecutorUnavailable(f"the cluster did not answer when asked to {what}: {problem}")
            log.warning("kubernetes: %s failed (%s), retry %d", what, problem, attempt + 1)
            time.sleep(delay)
        raise AssertionError("unreachable")

    # -- launch -------------------------------------------------------------------------------

    def inputs(self, run: Run) -> manifests.JobInputs:
        return manifests.JobInputs(
            run_id=run.pk,
            attempt=run.attempt,
            project=run.project.name,
            workflow=run.workflow.name,
            spec=run.spec,
            artifact_uri=run.artifact_uri,
            compute_resource=run.compute_resource,
            profile=railyard.compute_resources[run.compute_resource],
            image=railyard.trainer_image,
            namespace=self.namespace,
            timeout_seconds=railyard.run_timeout,
            backoff_limit=railyard.k8s_backoff_limit,
            ttl_seconds_after_finished=railyard.k8s_ttl_seconds_after_finished,
            env_from_secrets=railyard.k8s_env_from_secrets,
            service_account=railyard.k8s_service_account,
            # Credentials are not among these: Jobs get them by reference (RAILYARD_K8S_ENV_FROM_SECRETS).
            env=trainer_environment(
                TRAINER_SETTINGS,
                [str(root) for root in railyard.data_roots],
                profile_cpus(railyard.compute_resources[run.compute_resource]),
            ),
        )

    def launch(self, run: Run) -> dict:
        inputs = self.inputs(run)
        name = manifests.job_name(run.pk, run.attempt)
        try:
            self._call(
                "create ConfigMaps",
                self.core.create_namespaced_config_map,
                self.namespace,
                manifests.spec_config_map(inputs),
            )
        except ApiException as exc:
            if exc.status != 409:
                raise KubernetesAPIError(_explain(exc, "create ConfigMaps")) from exc
        try:
            job = self._call("create Jobs", self.batch.create_namespaced_job, self.namespace, manifests.job(inputs))
        except ApiException as exc:
            if exc.status != 409:
                raise KubernetesAPIError(_explain(exc, "create Jobs")) from exc
            # The Job of this very attempt already exists: a repeated launch adopts it.
            job = self._call("read Jobs", self.batch.read_namespaced_job, name, self.namespace)
            expected = {manifests.LABEL_RUN_ID: str(run.pk), manifests.LABEL_ATTEMPT: str(run.attempt)}
            if not _has_labels(job, expected):
                raise KubernetesAPIError(f"a Job named {name} exists but does not belong to run {run.pk}") from exc
        owner = manifests.owner_reference(self.api_client.sanitize_for_serialization(job))
        try:
            self._call(
                "update ConfigMaps",
                self.core.patch_namespaced_config_map,
                name,
                self.namespace,
                {"metadata": {"ownerReferences": [owner]}},
            )
        except ApiException as exc:
            log.warning("kubernetes: could not make Job %s own its spec: %s", name, _explain(exc, "patch"))
        return {"job": name, "namespace": self.namespace, "uid": job.metadata.uid}

    # -- observe ------------------------------------------------------------------------------

    def _list(self, what: str, fn: Callable[..., Any]) -> Iterator[Any]:
        token = None
        while True:
            page = self._call(
                what, fn, self.namespace, label_selector=manifests.SELECTOR, limit=PAGE_SIZE, _continue=token
            )
            # Filter again on our side: a selector the server ignored must not leak foreign objects in.
            yield from (item for item in page.items if _has_labels(item, {manifests.LABEL_MANAGED_BY: "railyard"}))
            token = page.metadata._continue
            if not token:
                return

    def list_jobs(self) -> dict[str, Any]:
        try:
            return {job.metadata.name: job for job in self._list("list Jobs", self.batch.list_namespaced_job)}
        except ApiException as exc:
            raise ExecutorUnavailable(_explain(exc, "list Jobs")) from exc

    def list_pods(self) -> dict[str, list[Any]]:
        pods: dict[str, list[Any]] = defaultdict(list)
        try:
            for pod in self._list("list pods", self.core.list_namespaced_pod):
                labels = pod.metadata.labels or {}
                key = manifests.job_name(int(labels[manifests.LABEL_RUN_ID]), int(labels[manifests.LABEL_ATTEMPT]))
                pods[key].append(pod)
        except ApiException as exc:
            raise ExecutorUnavailable(_explain(exc, "list pods")) from exc
        return pods

    def pods_of(self, run: Run) -> list[Any]:
        """The pods of the run's current Job, found by their labels (not by listing every pod)."""
        mine = {manifests.LABEL_RUN_ID: str(run.pk), manifests.LABEL_ATTEMPT: str(run.attempt)}
        selector = ",".join([manifests.SELECTOR, *(f"{key}={value}" for key, value in mine.items())])
        try:
            page = self._call("list pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector)
        except ApiException as exc:
            raise ExecutorUnavailable(_explain(exc, "list pods")) from exc
        return [pod for pod in page.items if _has_labels(pod, {manifests.LABEL_MANAGED_BY: "railyard", **mine})]

    def observe(self, runs: list[Run]) -> dict[int, JobState]:
        jobs, pods = self.list_jobs(), self.list_pods()
        observed = {}
        for run in runs:
            name = manifests.job_name(run.pk, run.attempt)
            job = jobs.get(name)
            if job is None and not self._in_grace(run):
                # A listing can miss a Job that exists; only a direct read may say it is gone.
                job = self.read_job(name)
            observed[run.pk] = self.state(run, job, pods.get(name, []))
        return observed

    def read_job(self, name: str) -> Any:
        """The Job of that name, or None when the cluster says it does not exist (404)."""
        try:
            return self._call("read Jobs", self.batch.read_namespaced_job, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ExecutorUnavailable(_explain(exc, "read Jobs")) from exc

    @staticmethod
    def _in_grace(run: Run) -> bool:
        launched = run.submitted_at or timezone.now()
        return timezone.now() - launched < timedelta(seconds=railyard.k8s_missing_grace_seconds)

    def state(self, run: Run, job: Any, pods: list[Any]) -> JobState:
        """What a run's Job and pods say, in words a person can act on."""
        if job is None:
            if self._in_grace(run):
                return JobState(JobPhase.PENDING, "waiting for the Job to appear")
            return JobState(
                JobPhase.MISSING, f"the Job {manifests.job_name(run.pk, run.attempt)} was deleted outside Railyard"
            )
        conditions = _conditions(job)
        oom = self._oom_message(run, pods)
        if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
            return JobState(JobPhase.SUCCEEDED, exit_code=0)
        if "Failed" in conditions or "FailureTarget" in conditions:
            failed = conditions.get("Failed") or conditions["FailureTarget"]
            if oom:
                return JobState(JobPhase.FAILED, oom)
            words = JOB_FAILURES.get(failed.reason, "the Job failed")
            if failed.reason == "DeadlineExceeded":
                words += f" of {job.spec.active_deadline_seconds} seconds"
            return JobState(JobPhase.FAILED, f"{words} ({failed.reason}: {failed.message or 'no message'})")
        running = [p for p in pods if p.status and p.status.phase == "Running"]
        if running:
            return JobState(JobPhase.RUNNING)
        waiting = self._pending_reason(pods)
        return JobState(JobPhase.PENDING, waiting or "waiting for the trainer's pod to start")

    def _pending_reason(self, pods: list[Any]) -> str:
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp or datetime.min, reverse=True):
            for status in pod.status.container_statuses or [] if pod.status else []:
                waiting = status.state.waiting if status.state else None
                if waiting and waiting.reason in START_FAILURES:
                    return f"{START_FAILURES[waiting.reason]} ({waiting.reason}: {waiting.message or ''})".strip()
            for condition in (pod.status.conditions or []) if pod.status else []:
                if condition.type == "PodScheduled" and condition.status == "False":
                    return f"no node can run the trainer yet ({condition.reason}: {condition.message})"
        return ""

    def _oom_message(self, run: Run, pods: list[Any]) -> str:
        for pod in pods:
            for status in (pod.status.container_statuses or []) if pod.status else []:
                terminated = status.state.terminated if status.state else None
                if terminated and terminated.reason == "OOMKilled":
                    limit = railyard.compute_resources[run.compute_resource].get("limits", {}).get("memory", "?")
                    return (
                        f"the trainer ran out of memory (OOMKilled) with a limit of {limit} on compute "
                        f"resource {run.compute_resource!r}; a larger profile may help"
                    )
        return ""

    # -- cancel, logs, sweep ------------------------------------------------------------------

    def cancel(self, run: Run) -> None:
        name = manifests.job_name(run.pk, run.attempt)
        self.delete(name)

    def delete(self, name: str) -> None:
        """Delete a Job and its pods (foreground) and its spec; gone already is fine."""
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        for what, fn in (
            ("delete Jobs", self.batch.delete_namespaced_job),
            ("delete ConfigMaps", self.core.delete_namespaced_config_map),
        ):
            try:
                self._call(what, fn, name, self.namespace, body=body)
            except ApiException as exc:
                if exc.status != 404:
                    raise KubernetesAPIError(_explain(exc, what)) from exc

    def logs(self, run: Run, tail: int | None = None) -> str:
        pods = self.pods_of(run)
        if not pods:
            return ""
        newest = max(pods, key=lambda p: p.metadata.creation_timestamp or datetime.min)
        try:
            response = self._call(
                "read pod logs",
                self.core.read_namespaced_pod_log,
                newest.metadata.name,
                self.namespace,
                container=manifests.CONTAINER,
                tail_lines=tail,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # not started yet, or already gone
                return ""
            raise KubernetesAPIError(_explain(exc, "read pod logs")) from exc
        return response.data.decode("utf-8", errors="replace")

    def sweep(self, keep: set[tuple[int, int]]) -> list[str]:
        """Delete Railyard's Jobs whose (run id, attempt) is not in `keep`; returns their names."""
        deleted = []
        for name, job in self.list_jobs().items():
            labels = job.metadata.labels or {}
            key = (int(labels.get(manifests.LABEL_RUN_ID, 0)), int(labels.get(manifests.LABEL_ATTEMPT, 0)))
            if key not in keep:
                self.delete(name)
                deleted.append(name)
        return deleted
