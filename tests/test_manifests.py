"""The Kubernetes objects Railyard builds: pure functions, valid against the API's schemas."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from railyard_trainer.errors import EXIT_BAD_DATA
from training.executors import JobInputs
from training.executors.kubernetes import manifests

KUBERNETES_VERSION = "1.33.0"
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def inputs(settings, **overrides) -> JobInputs:
    values = {
        "job_id": 7,
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
        "artifact_uri": "file:///srv/railyard/artifacts/runs/42/attempt-1",
        "compute_resource": "cpu",
        "profile": settings.RAILYARD["COMPUTE_RESOURCES"]["cpu"],
        "image": "registry.example.com/railyard-trainer:0.1.0",
        "timeout_seconds": 3600,
    }
    return JobInputs(**{**values, **overrides})


def job(settings, cluster: dict | None = None, **overrides) -> dict:
    return manifests.job(
        inputs(settings, **overrides), manifests.ClusterSettings(namespace="railyard", **(cluster or {}))
    )


@pytest.mark.parametrize("profile", ["cpu", "highmem", "gpu"])
def test_every_profiles_job_validates_strictly(settings, profile):
    made = job(
        settings,
        {"service_account": "railyard-trainer"},
        compute_resource=profile,
        secrets=("railyard-s3",),
        profile=settings.RAILYARD["COMPUTE_RESOURCES"][profile],
    )
    kubernetes_validate.validate(made, KUBERNETES_VERSION, strict=True)


def test_the_spec_config_map_validates_strictly_carries_the_spec_and_belongs_to_its_job(settings):
    created = {"metadata": {"name": "railyard-job-7", "uid": "d9c1"}}
    cluster = manifests.ClusterSettings(namespace="railyard")
    config_map = manifests.spec_config_map(inputs(settings), cluster, owner=created)
    kubernetes_validate.validate(config_map, KUBERNETES_VERSION, strict=True)
    assert '"run_id": "42"' in config_map["data"]["spec.json"]
    assert config_map["metadata"]["ownerReferences"] == [manifests.owner_reference(created)]


def test_strict_validation_catches_a_misspelt_field(settings):
    made = job(settings)
    made["spec"]["template"]["spec"]["restartPolicyy"] = "Never"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(made, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("job_id", [1, 42, 2**63 - 1])
def test_job_names_are_dns_labels_derived_from_the_job_alone(job_id):
    name = manifests.job_name(job_id)
    assert DNS_1123_LABEL.match(name)
    assert len(name) <= 63
    assert name == manifests.job_name(job_id)
    assert name != manifests.job_name(job_id + 1)


def test_the_job_names_its_runs_and_attempt(settings):
    metadata = job(settings)["metadata"]
    assert metadata["name"] == "railyard-job-7"
    assert metadata["labels"] == {
        "app.kubernetes.io/managed-by": "railyard",
        "railyard.dev/job-id": "7",
        "railyard.dev/run-id": "42",
        "railyard.dev/attempt": "1",
        "railyard.dev/project": "fraud",
        "railyard.dev/workflow": "gradient_boosting",
    }
    assert metadata["annotations"] == {"railyard.dev/compute-resource": "cpu", "railyard.dev/run-ids": "42"}


def test_each_concern_is_a_function_of_its_own(settings):
    profile = settings.RAILYARD["COMPUTE_RESOURCES"]["gpu"]
    cluster = manifests.ClusterSettings(namespace="railyard", service_account="trainer")
    pod = job(settings, {"service_account": "trainer"}, compute_resource="gpu", profile=profile)["spec"]["template"]
    pod_security, container_security = manifests.security()
    assert pod["spec"]["securityContext"] == pod_security
    assert pod["spec"]["containers"][0]["securityContext"] == container_security
    assert pod["spec"]["containers"][0]["resources"] == manifests.resources(profile)
    assert manifests.scheduling(profile, cluster).items() <= pod["spec"].items()
    assert manifests.scheduling(profile, cluster)["serviceAccountName"] == "trainer"
    volumes, mounts = manifests.volumes(inputs(settings, compute_resource="gpu", profile=profile))
    assert (pod["spec"]["volumes"], pod["spec"]["containers"][0]["volumeMounts"]) == (volumes, mounts)


def test_label_values_are_made_valid():
    assert manifests.label_value("fraud models/2026") == "fraud-models-2026"
    assert manifests.label_value("_x_" + "a" * 80) == "x_" + "a" * 60
    assert manifests.label_value("-.-") == ""


def test_the_job_fails_fast_on_bad_data_and_ignores_disruptions(settings):
    spec = job(settings)["spec"]
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {"containerName": "trainer", "operator": "In", "values": [EXIT_BAD_DATA]}
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (1, 3600, 86400)


def test_the_trainer_runs_locked_down(settings):
    pod = job(settings)["spec"]["template"]["spec"]
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


def test_credentials_are_only_referenced_and_only_the_projects(settings):
    container = job(settings, secrets=("fraud-data",))["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "fraud-data"}}]
    assert all("valueFrom" not in e and "SECRET" not in e["name"] for e in container["env"])


def test_a_file_store_and_file_sources_are_mounted_from_the_host_at_the_same_paths(settings):
    pod = job(settings)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    attempt = "/srv/railyard/artifacts/runs/42/attempt-1"  # the attempt's own folder, and nothing else of the store
    assert volumes["artifacts"]["hostPath"] == {"path": attempt, "type": "DirectoryOrCreate"}
    assert mounts["artifacts"] == {"name": "artifacts", "mountPath": attempt, "readOnly": False}
    data_mounts = sorted((m["mountPath"], m["readOnly"]) for name, m in mounts.items() if name.startswith("data-"))
    assert data_mounts == [("/srv/data", True)]  # it covers /srv/data/extra too


def test_an_object_store_needs_no_host_mount(settings):
    spec = {"run_id": "1", "data": {"features": []}}
    pod = job(settings, artifact_uri="s3://bucket/runs/1/attempt-1", spec=spec)["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["spec", "scratch"]


def test_the_owner_reference_points_at_the_created_job():
    created = {"metadata": {"name": "railyard-job-7", "uid": "d9c1"}}
    assert manifests.owner_reference(created) == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "railyard-job-7",
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


@pytest.mark.parametrize(
    ("memory", "limit"),
    [
        ("8Gi", 8 * 2**30),
        ("512Mi", 512 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("2G", 2 * 10**9),
        ("1048576", 2**20),
        ("", None),
    ],
)
def test_a_profiles_memory_limit_reads_as_bytes(memory, limit):
    from training.executors.base import profile_memory

    assert profile_memory({"limits": {"memory": memory}} if memory else {}) == limit


def test_a_packed_jobs_manifest_validates_names_its_runs_and_mounts_the_folder_of_them_all(settings):
    request = inputs(settings).spec
    packed = {
        "spec": request,
        "plan": None,
        "generic": "file:///srv/railyard/artifacts/runs/43/attempt-1",
        "runs": [
            {"run_id": str(pk), "out": f"file:///srv/railyard/artifacts/runs/{pk}/attempt-1", "segment": {"value": pk}}
            for pk in (44, 45, 46)
        ],
    }
    made = job(
        settings,
        spec=packed,
        artifact_uri="file:///srv/railyard/artifacts/runs/42/attempt-1/jobs/7",
        run_ids=(44, 45, 46),
    )
    kubernetes_validate.validate(made, KUBERNETES_VERSION, strict=True)
    assert made["metadata"]["annotations"]["railyard.dev/run-ids"] == "44,45,46"
    pod = made["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["artifacts"]["hostPath"]["path"] == "/srv/railyard/artifacts/runs"
    assert sorted(v["hostPath"]["path"] for name, v in volumes.items() if name.startswith("data-")) == ["/srv/data"]


def test_the_catalogue_job_validates_strictly_and_carries_nothing_but_the_image():
    cluster = manifests.ClusterSettings(namespace="railyard")
    made = manifests.catalogue_job("registry.example.com/churn/trainer:1", "railyard-catalogue-1", cluster)
    kubernetes_validate.validate(made, KUBERNETES_VERSION, strict=True)
    container = made["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/churn/trainer:1"
    assert container["command"] == ["python", "-m", "railyard_trainer", "workflows", "--json"]
    assert "envFrom" not in container  # no project's credentials
    assert made["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
