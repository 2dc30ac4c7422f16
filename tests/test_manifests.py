"""The Kubernetes objects Railyard builds: pure functions, valid against the API's schemas."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from railyard_trainer.errors import EXIT_BAD_DATA
from training import manifests

KUBERNETES_VERSION = "1.33.0"
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def inputs(settings, **overrides) -> manifests.JobInputs:
    values = {
        "run_id": 42,
        "attempt": 1,
        "project": "fraud",
        "workflow": "gradient_boosting",
        "spec": {
            "run_id": "42",
            "data": {
                "features": [
                    {"names": ["a", "y"], "source": "file", "format": "parquet", "path": "/srv/data/charges.parquet"},
                    {
                        "names": ["a", "b"],
                        "source": "file",
                        "format": "csv",
                        "path": "/srv/data/extra/merchants.csv",
                        "join_on": "a",
                    },
                ]
            },
        },
        "artifact_uri": "file:///srv/railyard/artifacts/runs/42",
        "compute_resource": "cpu",
        "profile": settings.RAILYARD["COMPUTE_RESOURCES"]["cpu"],
        "image": "registry.example.com/railyard-trainer:0.1.0",
        "namespace": "railyard",
        "timeout_seconds": 3600,
    }
    return manifests.JobInputs(**{**values, **overrides})


@pytest.mark.parametrize("profile", ["cpu", "highmem", "gpu"])
def test_every_profiles_job_validates_strictly(settings, profile):
    job = manifests.job(
        inputs(
            settings,
            compute_resource=profile,
            profile=settings.RAILYARD["COMPUTE_RESOURCES"][profile],
            env_from_secrets=["railyard-s3"],
            service_account="railyard-trainer",
        )
    )
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_the_spec_config_map_validates_strictly_and_carries_the_spec(settings):
    config_map = manifests.spec_config_map(inputs(settings))
    kubernetes_validate.validate(config_map, KUBERNETES_VERSION, strict=True)
    assert '"run_id": "42"' in config_map["data"]["spec.json"]


def test_strict_validation_catches_a_misspelt_field(settings):
    job = manifests.job(inputs(settings))
    job["spec"]["template"]["spec"]["restartPolicyy"] = "Never"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("run_id", "attempt"), [(1, 1), (42, 3), (10**18, 999)])
def test_job_names_are_dns_labels_stable_per_attempt(run_id, attempt):
    name = manifests.job_name(run_id, attempt)
    assert DNS_1123_LABEL.match(name)
    assert len(name) <= 63
    assert name == manifests.job_name(run_id, attempt)
    assert name != manifests.job_name(run_id, attempt + 1)


def test_label_values_are_made_valid():
    assert manifests.label_value("fraud models/2026") == "fraud-models-2026"
    assert manifests.label_value("_x_" + "a" * 80) == "x_" + "a" * 60
    assert manifests.label_value("-.-") == ""


def test_the_job_fails_fast_on_bad_data_and_ignores_disruptions(settings):
    spec = manifests.job(inputs(settings))["spec"]
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {"containerName": "trainer", "operator": "In", "values": [EXIT_BAD_DATA]}
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (1, 3600, 86400)


def test_the_trainer_runs_locked_down(settings):
    pod = manifests.job(inputs(settings))["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/tmp"]["name"] == "scratch"  # the only writable place besides the artifact store
    assert mounts["/etc/railyard"]["readOnly"] is True


def test_credentials_are_only_referenced(settings):
    container = manifests.job(inputs(settings, env_from_secrets=["railyard-s3"]))["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["envFrom"] == [{"secretRef": {"name": "railyard-s3"}}]
    assert all("valueFrom" not in e and "SECRET" not in e["name"] for e in container["env"])


def test_a_file_store_and_file_sources_are_mounted_from_the_host_at_the_same_paths(settings):
    pod = manifests.job(inputs(settings))["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert volumes["artifacts"]["hostPath"] == {"path": "/srv/railyard/artifacts/runs", "type": "DirectoryOrCreate"}
    assert mounts["artifacts"] == {"name": "artifacts", "mountPath": "/srv/railyard/artifacts/runs", "readOnly": False}
    data_mounts = sorted((m["mountPath"], m["readOnly"]) for name, m in mounts.items() if name.startswith("data-"))
    assert data_mounts == [("/srv/data", True)]  # it covers /srv/data/extra too


def test_an_object_store_needs_no_host_mount(settings):
    spec = {"run_id": "1", "data": {"features": []}}
    pod = manifests.job(inputs(settings, artifact_uri="s3://bucket/runs/1", spec=spec))["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["spec", "scratch"]


def test_the_owner_reference_points_at_the_created_job():
    created = {"metadata": {"name": "railyard-run-42-1", "uid": "d9c1"}}
    assert manifests.owner_reference(created) == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "railyard-run-42-1",
        "uid": "d9c1",
        "controller": False,
        "blockOwnerDeletion": False,
    }


@pytest.mark.parametrize(
    ("profile", "cpus"),
    [
        ({"limits": {"cpu": "4"}}, 4),
        ({"limits": {"cpu": "2.5"}}, 2),
        ({"limits": {"cpu": "500m"}}, 1),
        ({"requests": {"cpu": "3"}}, 3),
        ({}, 1),
        ({"limits": {"cpu": "lots"}}, 1),
    ],
)
def test_a_profiles_cpus_are_whole_and_at_least_one(profile, cpus):
    from training.executors.base import profile_cpus

    assert profile_cpus(profile) == cpus
