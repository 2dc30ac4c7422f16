"""The Kubernetes executor: each job is a batch/v1 Job built by `manifests`, named after the job.

- The cluster is found through the in-cluster service account, else KUBECONFIG (or ~/.kube/config).
- `observe` lists Railyard's Jobs and pods once per pass (label selector, large pages read as plain
  JSON), not per job; `outcomes` turns what it saw into outcomes.
- API errors never crash the worker: 5xx, 429 and timeouts are retried with backoff and then
  reported as `ExecutorUnavailable` (the worker tries again next pass); 403 and 422 become a
  failed run with the reason in words.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import urllib3
from django.utils import timezone
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from training import metrics
from training.conf import railyard
from training.executors.base import (
    Executor,
    ExecutorError,
    ExecutorUnavailable,
    JobInputs,
    JobRef,
    Outcome,
    read_catalogue,
)
from training.executors.kubernetes import manifests, outcomes

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.2, 0.5, 1.0)
#: Objects per list page: large pages, read as plain JSON, keep a pass over many jobs to a few calls.
PAGE_SIZE = 5000
#: How long an image's catalogue Job may take, its pull included.
CATALOGUE_SECONDS = 300
#: The label Kubernetes puts on a Job's pods (older clusters use `job-name`).
POD_JOB_NAME = "batch.kubernetes.io/job-name"


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


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _has_labels(obj: dict[str, Any], wanted: dict[str, str]) -> bool:
    labels = _labels(obj)
    return all(labels.get(k) == v for k, v in wanted.items())


def _name_of(job: JobRef) -> str:
    """The Job's name: from its handle (Jobs made before jobs had ids keep theirs), else from its id."""
    return job.handle.get("job") or manifests.job_name(job.job_id)


def _job_of(pod: dict[str, Any]) -> str | None:
    labels = _labels(pod)
    if labels.get(manifests.LABEL_JOB_ID, "").isdigit():
        return manifests.job_name(int(labels[manifests.LABEL_JOB_ID]))
    return labels.get(POD_JOB_NAME) or labels.get("job-name")


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

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """Call the API and return the answer's body, retrying what may pass (5xx, 429, timeouts,
        resets) with backoff. The body is read raw: turning answers into the client's model objects
        costs more than the call. Read in full, its connection goes back to the pool for the next call."""
        kwargs.setdefault("_request_timeout", railyard.k8s_request_timeout)
        kwargs["_preload_content"] = False
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                response = fn(*args, **kwargs)
                try:
                    return response.data
                finally:
                    response.release_conn()
            except ApiException as exc:
                if exc.status != 404:  # a 404 answers a question (is it there?); it is no error
                    metrics.EXECUTOR_API_ERRORS.labels(self.name, str(exc.status)).inc()
                if exc.status not in (429, 500, 502, 503, 504):
                    raise
                problem = f"{exc.status} {exc.reason}"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                timed_out = isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError)
                metrics.EXECUTOR_API_ERRORS.labels(self.name, "timeout" if timed_out else "connection").inc()
                problem = f"{type(exc).__name__}: {exc}"
            if delay is None:
                raise ExecutorUnavailable(f"the cluster did not answer when asked to {what}: {problem}")
            log.warning("kubernetes: %s failed (%s), retry %d", what, problem, attempt + 1)
            time.sleep(delay)
        raise AssertionError("unreachable")

    @property
    def cluster(self) -> manifests.ClusterSettings:
        return manifests.ClusterSettings(
            namespace=self.namespace,
            backoff_limit=railyard.k8s_backoff_limit,
            ttl_seconds_after_finished=railyard.k8s_ttl_seconds_after_finished,
            service_account=railyard.k8s_service_account,
        )

    # -- launch -------------------------------------------------------------------------------

    def launch(self, job: JobInputs) -> dict:
        """Create the job's Job, then its spec's ConfigMap owned by it: two calls. The pod waits for
        the ConfigMap (the kubelet retries the mount); a launcher that dies in between leaves a Job
        the next launch adopts (409) and completes."""
        cluster = self.cluster
        name = manifests.job_name(job.job_id)
        try:
            made = json.loads(
                self._call("create Jobs", self.batch.create_namespaced_job, self.namespace, manifests.job(job, cluster))
            )
        except ApiException as exc:
            if exc.status != 409:
                raise KubernetesAPIError(_explain(exc, "create Jobs")) from exc
            # The Job of this very job already exists: a repeated launch adopts it.
            made = self.read_job(name)
            if made is None or not _has_labels(made, {manifests.LABEL_JOB_ID: str(job.job_id)}):
                raise KubernetesAPIError(f"a Job named {name} exists but does not belong to job {job.job_id}") from exc
        try:
            self._call(
                "create ConfigMaps",
                self.core.create_namespaced_config_map,
                self.namespace,
                manifests.spec_config_map(job, cluster, owner=made),
            )
        except ApiException as exc:
            if exc.status != 409:
                refused = KubernetesAPIError(_explain(exc, "create ConfigMaps"))
                # Without its spec the pod would wait for ever: the Job goes (or the sweep takes it).
                with contextlib.suppress(ExecutorError):
                    self.delete(name)
                raise refused from exc
        return {"job": name, "namespace": self.namespace, "uid": made["metadata"]["uid"]}

    # -- an image's catalogue ----------------------------------------------------------------

    def workflows(self, image: str) -> tuple[list[dict], list[str]]:
        """Run a catalogue Job of the image, wait for it, read what it printed, and remove it."""
        name = f"railyard-catalogue-{secrets.token_hex(6)}"
        try:
            self._call(
                "create Jobs",
                self.batch.create_namespaced_job,
                self.namespace,
                manifests.catalogue_job(image, name, self.cluster),
            )
        except ApiException as exc:
            raise KubernetesAPIError(_explain(exc, "create Jobs")) from exc
        try:
            deadline = time.monotonic() + CATALOGUE_SECONDS
            while True:
                status = (self.read_job(name) or {}).get("status", {})
                if status.get("succeeded") or status.get("failed"):
                    break
                if time.monotonic() > deadline:
                    raise ExecutorError(f"the catalogue Job {name} did not finish in {CATALOGUE_SECONDS} seconds")
                time.sleep(1)
            pods = list(self._list("list pods", self.core.list_namespaced_pod, f"{POD_JOB_NAME}={name}"))
            output = self._pod_log(pods[0]["metadata"]["name"]) if pods else ""
            if not status.get("succeeded"):
                raise ExecutorError(f"the catalogue Job {name} failed: {output.strip()[-1000:]}")
            lines = output.splitlines()
            start = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
            return read_catalogue("\n".join(lines[start:]), "\n".join(lines[:start]))
        finally:
            with contextlib.suppress(ExecutorError):
                self.delete(name)

    def _pod_log(self, pod: str) -> str:
        try:
            answer = self._call("read pod logs", self.core.read_namespaced_pod_log, pod, self.namespace)
        except ApiException as exc:
            raise KubernetesAPIError(_explain(exc, "read pod logs")) from exc
        return answer.decode("utf-8", errors="replace")

    # -- observe ------------------------------------------------------------------------------

    def _list(self, what: str, fn: Callable[..., Any], selector: str = manifests.SELECTOR) -> Iterator[dict]:
        """Every object a selector matches, page by page, as the API's plain JSON."""
        token = None
        while True:
            page = json.loads(
                self._call(what, fn, self.namespace, label_selector=selector, limit=PAGE_SIZE, _continue=token)
            )
            # Filter again on our side: a selector the server ignored must not leak foreign objects in.
            mine = {manifests.LABEL_MANAGED_BY: manifests.MANAGED_BY}
            yield from (item for item in page.get("items") or [] if _has_labels(item, mine))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def list_jobs(self) -> dict[str, dict]:
        try:
            return {job["metadata"]["name"]: job for job in self._list("list Jobs", self.batch.list_namespaced_job)}
        except ApiException as exc:
            raise ExecutorUnavailable(_explain(exc, "list Jobs")) from exc

    def list_pods(self) -> dict[str, list[dict]]:
        pods: dict[str, list[dict]] = defaultdict(list)
        try:
            for pod in self._list("list pods", self.core.list_namespaced_pod):
                if job := _job_of(pod):
                    pods[job].append(pod)
        except ApiException as exc:
            raise ExecutorUnavailable(_explain(exc, "list pods")) from exc
        return pods

    def pods_of(self, job: JobRef) -> list[dict]:
        """The pods of one job, found by their labels (not by listing every pod)."""
        if job.handle.get("job", manifests.job_name(job.job_id)) == manifests.job_name(job.job_id):
            wanted = {manifests.LABEL_JOB_ID: str(job.job_id)}
        else:
            wanted = {POD_JOB_NAME: _name_of(job)}
        try:
            return list(self._list("list pods", self.core.list_namespaced_pod, manifests.selector(**wanted)))
        except ApiException as exc:
            raise ExecutorUnavailable(_explain(exc, "list pods")) from exc

    def observe(self, jobs: list[JobRef]) -> dict[int, Outcome]:
        listed, pods = self.list_jobs(), self.list_pods()
        observed = {}
        for job in jobs:
            name = _name_of(job)
            found = listed.get(name)
            if found is None and not self._in_grace(job):
                # A listing can miss a Job that exists; only a direct read may say it is gone.
                found = self.read_job(name)
            profile = railyard.compute_resources.get(job.compute_resource, {})
            observed[job.job_id] = outcomes.outcome(
                found,
                pods.get(name, []),
                name=name,
                compute_resource=job.compute_resource,
                memory_limit=profile.get("limits", {}).get("memory", "?"),
                in_grace=self._in_grace(job),
            )
        return observed

    def read_job(self, name: str) -> dict | None:
        """The Job of that name as plain JSON, or None when the cluster says it does not exist (404)."""
        try:
            answer = self._call("read Jobs", self.batch.read_namespaced_job, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ExecutorUnavailable(_explain(exc, "read Jobs")) from exc
        return json.loads(answer)

    @staticmethod
    def _in_grace(job: JobRef) -> bool:
        launched = job.launched_at or timezone.now()
        return timezone.now() - launched < timedelta(seconds=railyard.k8s_missing_grace_seconds)

    # -- cancel, logs, sweep ------------------------------------------------------------------

    def cancel(self, job: JobRef) -> None:
        self.delete(_name_of(job))

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

    def logs(self, job: JobRef, tail: int | None = None) -> str:
        pods = self.pods_of(job)
        if not pods:
            return ""
        newest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        try:
            answer = self._call(
                "read pod logs",
                self.core.read_namespaced_pod_log,
                newest["metadata"]["name"],
                self.namespace,
                container=manifests.CONTAINER,
                tail_lines=tail,
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # not started yet, or already gone
                return ""
            raise KubernetesAPIError(_explain(exc, "read pod logs")) from exc
        return answer.decode("utf-8", errors="replace")

    def sweep(self, active: Callable[[set[int]], set[int]]) -> list[str]:
        """Delete Railyard's Jobs whose job `active` does not name (ended, or unknown); returns their names."""
        listed = {}
        for name, job in self.list_jobs().items():
            job_id = _labels(job).get(manifests.LABEL_JOB_ID, "")
            if job_id.isdigit():  # Jobs made before jobs had ids are left to their TTL
                listed[int(job_id)] = name
        keep = active(set(listed))
        deleted = []
        for job_id, name in sorted(listed.items()):
            if job_id not in keep:
                self.delete(name)
                deleted.append(name)
        return deleted
