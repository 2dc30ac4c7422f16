"""A Kubernetes cluster for tests: kmock's API server, plus a thread playing the Job controller and kubelet.

No cluster can run here. The executor talks to kmock's `KubernetesEmulator` over HTTP with the
real `kubernetes` client, through a kubeconfig file. kmock 0.8 stores and serves objects but has
no controllers, so `Controller` does their work through the same API: it creates each Job's pod,
runs the Job's container command as a local process with the Job's environment and volumes,
and writes the pod's and the Job's status back. The API server is `tests/kubernetes_api.py`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
from kubernetes import client

from tests.kubernetes_api import NOW, Emulator

logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _has_begun(log: Path) -> bool:
    """Whether a trainer's container log shows its first stage (the trainer's work, not its start-up)."""
    try:
        return b"stage=" in log.read_bytes()
    except FileNotFoundError:
        return False


@dataclass
class JobRun:
    """The controller's memory of one Job: its pods so far and the process of the current one."""

    job: dict
    started: float = field(default_factory=time.monotonic)
    pods: int = 0
    failed: int = 0
    pod: str = ""
    process: subprocess.Popen | None = None
    log: Path | None = None
    oom: bool = False
    paused: bool = False
    done: bool = False


class Cluster:
    """The API server on a local port, and the controller running Jobs as local processes."""

    def __init__(self, workdir: Path, namespace: str, run_jobs: bool = True):
        self.workdir = workdir
        # Without it the API server alone: Jobs are stored and listed, nothing runs them (benchmarks).
        self.run_jobs = run_jobs
        self.namespace = namespace
        self.emulator = Emulator()
        self.emulator.resources["v1/pods"] = {}
        self.emulator.resources["v1/configmaps"] = {}
        self.emulator.resources["v1/secrets"] = {}
        self.emulator.resources["batch/v1/jobs"] = {}
        self.emulator["get", kmock.resource("v1/pods"), kmock.subresource("log")] << self._pod_log
        self.node_labels: list[dict[str, str]] = [{"kubernetes.io/os": "linux"}]
        self.broken_images: set[str] = set()
        #: Images whose `python` is another interpreter here (a team's trainer, as a virtualenv).
        self.images: dict[str, str] = {}
        # Stop trainers (SIGSTOP) once they have logged their first stage, so a test can act while one runs.
        self.pause_trainers = False
        self.jobs: dict[str, JobRun] = {}
        self._stop = threading.Event()
        self._loop = asyncio.new_event_loop()
        self.url = ""

    def resume_trainers(self) -> None:
        """Let paused trainers go on (SIGCONT), and pause no more."""
        self.pause_trainers = False
        for run in list(self.jobs.values()):
            if run.paused and run.process is not None and run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGCONT)
                run.paused = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Cluster:
        ready = threading.Event()

        async def serve() -> None:
            async with kmock.Server(self.emulator) as server:
                self.url = str(server.url).rstrip("/")
                ready.set()
                while not self._stop.is_set():
                    await asyncio.sleep(0.02)

        threading.Thread(target=self._loop.run_until_complete, args=(serve(),), daemon=True).start()
        assert ready.wait(10), "the API server did not start"
        self.api = client.ApiClient(client.Configuration(host=self.url))
        self.batch, self.core = client.BatchV1Api(self.api), client.CoreV1Api(self.api)
        self._controller = threading.Thread(target=self._control, daemon=True)
        if self.run_jobs:
            self._controller.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._controller.is_alive():
            self._controller.join(10)
        for run in self.jobs.values():
            self._kill(run)

    def kubeconfig(self) -> Path:
        path = self.workdir / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [{"name": "test", "cluster": {"server": self.url}}],
                    "users": [{"name": "test", "user": {"token": "test-token"}}],
                    "contexts": [
                        {"name": "test", "context": {"cluster": "test", "user": "test", "namespace": self.namespace}}
                    ],
                }
            )
        )
        return path

    # -- what tests do to the cluster ---------------------------------------------------------

    def oom_kill(self, job_name: str) -> None:
        """The kernel kills the trainer for exceeding its memory limit."""
        run = self.wait_running(job_name)
        run.oom = True
        os.killpg(run.process.pid, signal.SIGKILL)

    def wait_running(self, job_name: str, timeout: float = 120) -> JobRun:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.jobs.get(job_name)
            if run and run.process and run.log and _has_begun(run.log):
                return run
            time.sleep(0.05)
        raise AssertionError(f"job {job_name} never ran")

    def wait_paused(self, job_name: str, timeout: float = 120) -> JobRun:
        """Wait until the controller has stopped the Job's trainer (with `pause_trainers` set)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.jobs.get(job_name)
            if run and run.paused:
                return run
            time.sleep(0.05)
        raise AssertionError(f"the trainer of job {job_name} was never paused")

    def job(self, name: str) -> dict:
        return self.api.sanitize_for_serialization(self.batch.read_namespaced_job(name, self.namespace))

    def objects(self, plural: str) -> list[str]:
        return sorted(
            name
            for (res, ns, name), obj in self.emulator.objects.items()
            if res.plural == plural and ns == self.namespace and not obj.deleted
        )

    # -- the controller and kubelet -----------------------------------------------------------

    def _pod_log(self, request: Any) -> bytes:
        for run in self.jobs.values():
            if run.pod == request.name and run.log and run.log.exists():
                lines = run.log.read_bytes().splitlines(keepends=True)
                tail = int(request.params.get("tailLines") or 0)
                return b"".join(lines[-tail:] if tail else lines)
        return b""

    def _control(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - the controller keeps going, like a real one
                print(f"controller: {exc!r}", file=sys.stderr)
            time.sleep(0.05)

    def _tick(self) -> None:
        listing = json.loads(self.batch.list_namespaced_job(self.namespace, _preload_content=False).data)
        present = {job["metadata"]["name"]: job for job in listing["items"]}
        for name, job in present.items():
            run = self.jobs.setdefault(name, JobRun(job=job))
            if not run.done:
                self._advance(name, run)
        for name in set(self.jobs) - set(present):
            self._kill(self.jobs.pop(name))  # deleted: foreground propagation removes its pods
            for pod in self.objects("pods"):
                if pod.startswith(f"{name}-"):
                    self.core.delete_namespaced_pod(pod, self.namespace)

    def _advance(self, name: str, run: JobRun) -> None:
        spec = run.job["spec"]
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and time.monotonic() - run.started > deadline:
            self._kill(run)
            self._finish_job(name, run, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif run.process is None and not run.pod:
            self._start_pod(name, run)
        elif run.process is not None and run.process.poll() is not None:
            self._pod_ended(name, run)
        elif self.pause_trainers and run.process is not None and not run.paused and _has_begun(run.log):
            os.killpg(run.process.pid, signal.SIGSTOP)
            run.paused = True

    def _start_pod(self, name: str, run: JobRun) -> None:
        template = run.job["spec"]["template"]
        container = template["spec"]["containers"][0]
        if not self._mountable(template["spec"]):
            return  # like the kubelet, try again until the ConfigMaps it mounts exist
        run.pods += 1
        run.pod = f"{name}-{run.pods}"
        pod = {
            "metadata": {
                "name": run.pod,
                "namespace": self.namespace,
                "labels": {**template["metadata"]["labels"], "batch.kubernetes.io/job-name": name},
            },
            "spec": template["spec"],
        }
        selector = template["spec"].get("nodeSelector") or {}
        if not any(all(labels.get(k) == v for k, v in selector.items()) for labels in self.node_labels):
            n = len(self.node_labels)
            pod["status"] = {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": f"0/{n} nodes are available: {n} node(s) didn't match Pod's node affinity/selector.",
                    }
                ],
            }
        elif container["image"] in self.broken_images:
            pod["status"] = {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "ready": False,
                        "restartCount": 0,
                        "image": container["image"],
                        "imageID": "",
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": f'Back-off pulling image "{container["image"]}"',
                            }
                        },
                    }
                ],
            }
        else:
            run.process, run.log = self._run_container(run.pod, template["spec"], container)
            pod["status"] = {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "ready": True,
                        "restartCount": 0,
                        "image": container["image"],
                        "imageID": "",
                        "state": {"running": {"startedAt": NOW()}},
                    }
                ],
            }
        self.core.create_namespaced_pod(self.namespace, pod)

    def _mountable(self, pod_spec: dict) -> bool:
        wanted = {volume["configMap"]["name"] for volume in pod_spec.get("volumes", []) if "configMap" in volume}
        return wanted <= set(self.objects("configmaps"))

    def _run_container(self, pod: str, pod_spec: dict, container: dict) -> tuple[subprocess.Popen, Path]:
        """Run the container's command here: volumes become folders, `python` this interpreter (or the
        one `images` names for the container's image)."""
        root = self.workdir / "pods" / pod
        mounts: dict[str, str] = {}
        for volume in pod_spec.get("volumes", []):
            mount = next((m for m in container.get("volumeMounts", []) if m["name"] == volume["name"]), None)
            if mount is None or "hostPath" in volume:
                continue  # host folders are the same folders on this machine
            local = root / volume["name"]
            local.mkdir(parents=True)
            if "configMap" in volume:
                config_map = self.core.read_namespaced_config_map(volume["configMap"]["name"], self.namespace)
                for key, value in (config_map.data or {}).items():
                    (local / key).write_text(value)
            mounts[mount["mountPath"]] = str(local)

        def local_path(value: str) -> str:
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    return local + value[len(mount_path) :]
            return value

        env = {"PATH": os.environ["PATH"]}
        for source in container.get("envFrom", []):
            secret = self.core.read_namespaced_secret(source["secretRef"]["name"], self.namespace)
            env.update({k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()})
        env.update({item["name"]: local_path(item["value"]) for item in container.get("env", [])})
        command = [local_path(arg) for arg in container["command"]]
        if command[0] == "python":
            command[0] = self.images.get(container["image"], sys.executable)
        log = root / "container.log"
        root.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
            )
        return process, log

    def _pod_ended(self, name: str, run: JobRun) -> None:
        code = run.process.returncode
        exit_code = 128 - code if code < 0 else code
        reason = "OOMKilled" if run.oom else ("Completed" if code == 0 else "Error")
        container = run.job["spec"]["template"]["spec"]["containers"][0]["name"]
        self.core.patch_namespaced_pod_status(
            run.pod,
            self.namespace,
            {
                "status": {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "containerStatuses": [
                        {
                            "name": container,
                            "ready": False,
                            "restartCount": 0,
                            "image": "",
                            "imageID": "",
                            "state": {"terminated": {"exitCode": exit_code, "reason": reason}},
                        }
                    ],
                }
            },
        )
        run.process = None
        if code == 0:
            self._finish_job(name, run, "Complete", "CompletionsReached", "Reached expected number of succeeded pods")
            return
        run.failed += 1
        for index, rule in enumerate(run.job["spec"].get("podFailurePolicy", {}).get("rules", [])):
            on_exit = rule.get("onExitCodes")
            if rule["action"] == "FailJob" and on_exit and exit_code in on_exit["values"]:
                self._finish_job(
                    name,
                    run,
                    "Failed",
                    "PodFailurePolicy",
                    f"Container {container} for pod {self.namespace}/{run.pod} failed with exit code "
                    f"{exit_code} matching FailJob rule at index {index}",
                )
                return
        if run.failed > run.job["spec"].get("backoffLimit", 6):
            self._finish_job(name, run, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        else:
            run.pod = ""  # the next tick starts a new pod

    def _finish_job(self, name: str, run: JobRun, condition: str, reason: str, message: str) -> None:
        run.done = True
        status: dict[str, Any] = {
            "conditions": [
                {"type": condition, "status": "True", "reason": reason, "message": message, "lastTransitionTime": NOW()}
            ]
        }
        status["succeeded" if condition == "Complete" else "failed"] = 1 if condition == "Complete" else run.failed
        self.batch.patch_namespaced_job_status(name, self.namespace, {"status": status})

    def _kill(self, run: JobRun) -> None:
        if run.process is not None and run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait()


NAMESPACE = "railyard-test"


def submitted(owner: Any, request: dict) -> Any:
    """A run submitted and dispatched (so its Job exists), read back."""
    from training import services, worker

    run, _ = services.submit(owner, request)
    worker.dispatch()
    run.refresh_from_db()
    return run


def job_name_of(run: Any) -> str:
    """The name of the Kubernetes Job of the run's current attempt."""
    return run.current_job().handle["job"]


def message_containing(run: Any, fragment: str, timeout: float = 120.0) -> str:
    """Reconcile until the run's status message mentions `fragment`; returns the message."""
    from training import worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.reconcile()
        run.refresh_from_db()
        if fragment in run.status_message:
            return run.status_message
        time.sleep(0.05)
    raise AssertionError(f"status message is still {run.status_message!r}")
