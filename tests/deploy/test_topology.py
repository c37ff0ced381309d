"""The compose topology without containers: three `textsr serve` replicas behind the real nginx with
docker/nginx/nginx.conf, scraped by the real Prometheus with docker/prometheus/prometheus.yml
(addresses rewritten to loopback). No Docker engine runs here; everything else is the real thing."""

from __future__ import annotations

import concurrent.futures as cf
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.service.conftest import ROOT, ServerProcess, free_port, png_bytes, render_word

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CROP = png_bytes(render_word("exit", 16, 64))


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


@pytest.fixture(scope="module")
def topology(model_dir, tmp_path_factory):
    if not Path(NGINX).exists() or not Path(PROMETHEUS).exists():
        pytest.skip("nginx and prometheus (Debian packages) are needed; scripts/system-deps.sh installs them as root")
    tmp = tmp_path_factory.mktemp("topology")
    env = {"TEXTSR_RECOGNITION": "false", "TEXTSR_MAX_QUEUE_DELAY_MS": "2"}
    replicas = [ServerProcess(model_dir, tmp / f"replica{i}.log", **env) for i in range(3)]
    for r in replicas:
        r.wait_ready()
    # nginx: the compose file's configuration, upstreams rewritten to loopback
    conf = (ROOT / "docker/nginx/nginx.conf").read_text()
    servers = "\n".join(f"        server 127.0.0.1:{r.port} max_fails=3 fail_timeout=5s;" for r in replicas)
    conf, n = re.subn(r"^\s*server textsr:8000[^;]*;", servers, conf, flags=re.M)
    assert n == 1
    lb_port = free_port()
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{lb_port};").replace("pid /tmp/nginx.pid;", f"pid {tmp}/nginx.pid;")
    (tmp / "nginx.conf").write_text(conf)
    nginx = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=(tmp / "nginx.log").open("w"))
    # Prometheus: the compose scrape config, DNS discovery rewritten to the replicas' ports
    prom_cfg = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())
    job = prom_cfg["scrape_configs"][0]
    assert job["dns_sd_configs"][0]["port"] == 8000
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{r.port}" for r in replicas]}]
    prom_cfg["global"]["scrape_interval"] = "1s"
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg))
    prom_port = free_port()
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp / "prometheus.log").open("w"),
    )
    lb, prom_url = f"http://127.0.0.1:{lb_port}", f"http://127.0.0.1:{prom_port}"
    wait_http(lb + "/healthz")
    wait_http(prom_url + "/-/ready")
    yield {"lb": lb, "prom": prom_url, "replicas": replicas}
    for p in (nginx, prom):
        p.send_signal(signal.SIGTERM)
        p.wait(20)
    for r in replicas:
        r.stop()


def query(prom: str, expr: str) -> list[dict]:
    r = httpx.get(prom + "/api/v1/query", params={"query": expr}, timeout=5).json()
    assert r["status"] == "success", r
    return r["data"]["result"]


def upscale_count(replica: ServerProcess) -> float:
    text = httpx.get(replica.url + "/metrics").text
    return sum(float(v) for v in re.findall(r'textsr_requests_total\{endpoint="/v1/upscale",status="200"\} ([0-9.e+]+)', text))


def post(lb: str) -> int:
    return httpx.post(lb + "/v1/upscale", files={"file": ("c.png", CROP)}, headers={"Accept": "image/png"}, timeout=60).status_code


def test_requests_reach_every_replica_and_prometheus_counts_them(topology):
    lb, prom, replicas = topology["lb"], topology["prom"], topology["replicas"]
    sent = 60
    with cf.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: post(lb), range(sent)))
    assert codes == [200] * sent
    per_replica = [upscale_count(r) for r in replicas]
    assert all(n > 0 for n in per_replica) and sum(per_replica) == sent
    deadline, total = time.time() + 30, None
    while time.time() < deadline:
        up = query(prom, 'up{job="textsr"}')
        result = query(prom, 'sum(textsr_requests_total{endpoint="/v1/upscale",status="200"})')
        total = float(result[0]["value"][1]) if result else None
        if len(up) == 3 and all(u["value"][1] == "1" for u in up) and total == sent:
            break
        time.sleep(0.5)
    assert total == sent


def test_killing_a_replica_under_load_loses_no_request(topology):
    lb, prom, replicas = topology["lb"], topology["prom"], topology["replicas"]
    victim = replicas[0]
    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post, lb) for _ in range(160)]
        time.sleep(1.0)  # load is flowing through all three replicas
        victim.proc.send_signal(signal.SIGKILL)
        codes = [f.result() for f in futures]
    assert codes.count(200) == len(codes), {c: codes.count(c) for c in set(codes)}
    assert victim.proc.wait(10) == -signal.SIGKILL
    deadline = time.time() + 30
    while time.time() < deadline:
        up = {u["metric"]["instance"]: u["value"][1] for u in query(prom, 'up{job="textsr"}')}
        if up.get(f"127.0.0.1:{victim.port}") == "0":
            break
        time.sleep(0.5)
    assert up[f"127.0.0.1:{victim.port}"] == "0"
    assert all(up[f"127.0.0.1:{r.port}"] == "1" for r in replicas[1:])
