"""What deploys Railyard: the kustomize base and overlay, and the two images' commands."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import pytest
import requests
import yaml
from django.conf import settings as django_settings

from training.executors import JobInputs
from training.executors.kubernetes import manifests

DEPLOY = Path(django_settings.BASE_DIR) / "deploy"
KUBERNETES_VERSION = "1.33.0"


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def base_objects() -> list[dict]:
    kustomization = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in documents(DEPLOY / "base" / name)]


def by_kind_name(kind: str, name: str) -> dict:
    return next(o for o in base_objects() if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("obj", base_objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_deploy_object_validates_strictly(obj):
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_overlay_patches_objects_the_base_has():
    overlay = yaml.safe_load((DEPLOY / "overlays" / "example" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../base"]
    names = {(o["kind"], o["metadata"]["name"]) for o in base_objects()}
    for patch in overlay["patches"]:
        if "path" in patch:
            doc = documents(DEPLOY / "overlays" / "example" / patch["path"])[0]
            assert (doc["kind"], doc["metadata"]["name"]) in names
        else:
            assert (patch["target"]["kind"], patch["target"]["name"]) in names


def test_the_worker_may_do_only_what_launching_and_following_jobs_needs():
    rules = {
        (tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"])
        for r in by_kind_name("Role", "railyard-worker")["rules"]
    }
    assert rules == {
        (("batch",), ("jobs",)): {"create", "get", "list", "watch", "delete"},
        (("",), ("configmaps",)): {"create", "patch", "delete"},
        (("",), ("pods",)): {"get", "list"},
        (("",), ("pods/log",)): {"get"},
    }
    deployment = by_kind_name("Deployment", "railyard-worker")["spec"]
    assert deployment["replicas"] == 2  # replicas share the work by leases
    worker = deployment["template"]["spec"]
    assert worker["serviceAccountName"] == "railyard-worker"
    assert worker["containers"][0]["command"] == ["python", "manage.py", "run_worker"]


def test_the_web_app_only_reads_and_is_probed_on_healthz(client):
    verbs = {verb for rule in by_kind_name("Role", "railyard-web")["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list"}
    web = by_kind_name("Deployment", "railyard-web")["spec"]["template"]["spec"]
    container = web["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        host = {h["name"]: h["value"] for h in get["httpHeaders"]}["Host"]
        assert client.get(get["path"], HTTP_HOST=host).content == b"ok"
    assert web["initContainers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_every_configured_variable_is_one_railyard_or_boto3_reads():
    settings_source = (Path(django_settings.BASE_DIR) / "railyard_site" / "settings.py").read_text()
    overlay = documents(DEPLOY / "overlays" / "example" / "configmap.yaml")[0]
    for key in {**by_kind_name("ConfigMap", "railyard")["data"], **overlay["data"]}:
        assert f'"{key}"' in settings_source or key.startswith("AWS_"), key


def dockerfile_instruction(path: Path, instruction: str) -> list[str]:
    line = next(ln for ln in path.read_text().splitlines() if ln.startswith(instruction + " "))
    return json.loads(line.removeprefix(instruction + " "))


def test_the_trainer_image_runs_the_command_the_jobs_run(tmp_path):
    entrypoint = dockerfile_instruction(Path(django_settings.BASE_DIR) / "trainer_image" / "Dockerfile", "ENTRYPOINT")
    assert entrypoint == ["python", "-m", "railyard_trainer"]
    assert re.search(
        r"^USER 10001:10001$", (Path(django_settings.BASE_DIR) / "trainer_image" / "Dockerfile").read_text(), re.M
    )
    job_command = manifests.job(
        JobInputs(
            job_id=1,
            attempt=1,
            run_id=1,
            project="p",
            workflow="w",
            spec={"data": {"features": []}},
            artifact_uri="s3://b/runs/1/attempt-1",
            compute_resource="cpu",
            profile={},
            image="i",
            timeout_seconds=60,
        ),
        manifests.ClusterSettings(namespace="n"),
    )["spec"]["template"]["spec"]["containers"][0]["command"]
    assert job_command[:3] == entrypoint
    result = subprocess.run(
        [sys.executable, *entrypoint[1:], "workflows"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "gradient_boosting" in {w["name"] for w in json.loads(result.stdout)}


@pytest.mark.slow
def test_the_web_image_command_serves_the_app(tmp_path):
    command = dockerfile_instruction(Path(django_settings.BASE_DIR) / "Dockerfile", "CMD")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [*command[:2], "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    # A deployment's Secret provides SECRET_KEY (deploy/base/secret.example.yaml).
    env = {"PATH": str(Path(sys.executable).parent), "RAILYARD_VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 50}
    log = open(tmp_path / "gunicorn.log", "w+")  # noqa: SIM115 - read if it fails to start
    process = subprocess.Popen(command, cwd=django_settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer on a busy machine
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert response.text == "ok"
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_overlay_replaces_the_example_secret_from_an_uncommitted_file():
    overlay = yaml.safe_load((DEPLOY / "overlays" / "example" / "kustomization.yaml").read_text())
    generator = overlay["secretGenerator"][0]
    assert (generator["name"], generator["behavior"], generator["envs"]) == ("railyard", "replace", ["secrets.env"])
    example_keys = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "overlays" / "example" / "secrets.env.example").read_text().splitlines()
        if line
    }
    assert example_keys == set(by_kind_name("Secret", "railyard")["stringData"])
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(DEPLOY / "overlays" / "example" / "secrets.env")],
        cwd=django_settings.BASE_DIR,
    )
    assert ignored.returncode == 0


def kustomize(target: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (.ci/run installs it)")
    rendered = subprocess.run([kubectl, "kustomize", str(target)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def test_the_example_overlay_renders_into_valid_objects(tmp_path):
    tree = tmp_path / "deploy"
    shutil.copytree(DEPLOY, tree)
    example = tree / "overlays" / "example"
    (example / "secrets.env").write_text("SECRET_KEY=s3cret\nDATABASE_URL=postgres://u:p@db:5432/railyard\n")

    objects = kustomize(example)

    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    found = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert all(o["metadata"].get("namespace", "railyard") == "railyard" for o in objects)
    web = found[("Deployment", "railyard-web")]["spec"]
    assert web["replicas"] == 3
    assert web["template"]["spec"]["containers"][0]["image"] == "registry.example.com/ml/railyard:0.1.0"
    config = found[("ConfigMap", "railyard")]["data"]
    assert config["RAILYARD_EXECUTOR"] == "kubernetes"
    assert config["RAILYARD_TRAINER_IMAGE"] == "registry.example.com/ml/railyard-trainer:0.1.0"
    secret = found[("Secret", "railyard")]["data"]
    assert base64.b64decode(secret["SECRET_KEY"]) == b"s3cret"


def test_the_base_renders(tmp_path):
    names = {(o["kind"], o["metadata"]["name"]) for o in kustomize(DEPLOY / "base")}
    assert names == {
        ("Namespace", "railyard"),
        ("ConfigMap", "railyard"),
        ("Secret", "railyard"),
        ("ServiceAccount", "railyard-worker"),
        ("Role", "railyard-worker"),
        ("RoleBinding", "railyard-worker"),
        ("ServiceAccount", "railyard-web"),
        ("Role", "railyard-web"),
        ("RoleBinding", "railyard-web"),
        ("Deployment", "railyard-web"),
        ("Service", "railyard-web"),
        ("Deployment", "railyard-worker"),
    }
