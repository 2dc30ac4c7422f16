"""Railyard's app settings: the `RAILYARD` dict, read through one object."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings


class RailyardSettings:
    def _get(self, key: str) -> Any:
        return settings.RAILYARD[key]

    @property
    def executor(self) -> str:
        return self._get("EXECUTOR")

    @property
    def artifact_store(self) -> str:
        return self._get("ARTIFACT_STORE").rstrip("/")

    @property
    def data_dir(self) -> Path:
        return Path(self._get("DATA_DIR"))

    @property
    def data_roots(self) -> list[Path]:
        return [Path(p) for p in self._get("DATA_ROOTS")] or [self.data_dir]

    @property
    def s3_prefixes(self) -> list[str]:
        return list(self._get("S3_PREFIXES"))

    @property
    def work_dir(self) -> Path:
        return Path(self._get("WORK_DIR"))

    @property
    def local_concurrency(self) -> int:
        return self._get("LOCAL_CONCURRENCY")

    @property
    def reconcile_interval(self) -> int:
        return self._get("RECONCILE_INTERVAL_SECONDS")

    @property
    def lease_ttl(self) -> timedelta:
        return timedelta(seconds=self._get("LEASE_SECONDS"))

    @property
    def metrics_token(self) -> str:
        return self._get("METRICS_TOKEN")

    @property
    def worker_metrics_port(self) -> int:
        return self._get("WORKER_METRICS_PORT")

    @property
    def run_timeout(self) -> int:
        return self._get("RUN_TIMEOUT_SECONDS")

    @property
    def idempotency_key_ttl(self) -> timedelta:
        return timedelta(hours=self._get("IDEMPOTENCY_KEY_TTL_HOURS"))

    @property
    def anyone_creates_projects(self) -> bool:
        return self._get("ANYONE_CREATES_PROJECTS")

    @property
    def trainer_command(self) -> list[str]:
        return list(self._get("TRAINER_COMMAND"))

    @property
    def local_images(self) -> dict[str, list[str]]:
        return dict(self._get("LOCAL_IMAGES"))

    @property
    def compute_resources(self) -> dict[str, dict]:
        return self._get("COMPUTE_RESOURCES")

    @property
    def default_compute_resource(self) -> str:
        return self._get("DEFAULT_COMPUTE_RESOURCE")

    @property
    def k8s_namespace(self) -> str:
        return self._get("K8S_NAMESPACE")

    @property
    def trainer_image(self) -> str:
        return self._get("TRAINER_IMAGE")

    @property
    def k8s_service_account(self) -> str:
        return self._get("K8S_SERVICE_ACCOUNT")

    @property
    def k8s_env_from_secrets(self) -> list[str]:
        return list(self._get("K8S_ENV_FROM_SECRETS"))

    @property
    def k8s_backoff_limit(self) -> int:
        return self._get("K8S_BACKOFF_LIMIT")

    @property
    def k8s_ttl_seconds_after_finished(self) -> int:
        return self._get("K8S_TTL_SECONDS_AFTER_FINISHED")

    @property
    def k8s_missing_grace_seconds(self) -> int:
        return self._get("K8S_MISSING_GRACE_SECONDS")

    @property
    def k8s_request_timeout(self) -> int:
        return self._get("K8S_REQUEST_TIMEOUT_SECONDS")

    def run_artifact_uri(self, run_id: int, attempt: int) -> str:
        """Each attempt of a run writes into a folder of its own, so that none overwrites another's."""
        return f"{self.artifact_store}/runs/{run_id}/attempt-{attempt}"


railyard = RailyardSettings()
