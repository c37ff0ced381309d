"""The README is honest: its settings table is the Settings class, its commands parse, and its
curl, Python and tritonclient examples run against a live server; `make serve` starts the service."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time

import httpx
import pytest

from service.settings import markdown_table
from tests.service.conftest import ROOT, free_port
from textsr.cli import build_parser

README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def commands() -> list[str]:
    lines = []
    for block in blocks("bash"):
        joined = block.replace("\\\n", " ")
        lines += [line.split("#")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    return lines


def test_settings_table_is_generated_from_settings():
    table = README.split("<!-- settings-table -->\n")[1].split("\n<!-- /settings-table -->")[0]
    assert table == markdown_table()


def test_every_textsr_command_parses():
    found = [c for c in commands() if ".venv/bin/textsr" in c] + re.findall(r"`(\.venv/bin/textsr [^`]+)`", README)
    assert len(found) >= 5
    parser = build_parser()
    for cmd in found:
        parser.parse_args(shlex.split(cmd)[1:])


def test_curl_examples_run(server, tmp_path):
    curls = [c for c in commands() if c.startswith("curl")]
    assert len(curls) == 4
    for cmd in curls:
        cmd = cmd.replace("http://127.0.0.1:8000", server.url).replace("-o word_sr.png", f"-o {tmp_path}/word_sr.png")
        out = subprocess.run(cmd + " -w '\\n%{http_code}'", shell=True, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.stdout.strip().endswith("200") or (tmp_path / "word_sr.png").stat().st_size > 100, (cmd, out.stdout[-300:])


def test_python_examples_run(server, tmp_path):
    model = httpx.get(server.url + "/v1/models").json()["models"][0]["name"]
    for code in blocks("python"):
        code = code.replace("http://127.0.0.1:8000", server.url).replace('"127.0.0.1:8000"', f'"127.0.0.1:{server.port}"')
        code = code.replace('"word_sr.png"', repr(str(tmp_path / "word_sr.png")))
        if model != "gestalt-tsrn-synth":  # test fixture model instead of the shipped one
            code = code.replace('"gestalt-tsrn-synth"', repr(model))
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["sr"].shape == (4, 3, 32, 128)


def test_make_serve_starts_the_service(model_dir):
    if not (ROOT / ".venv" / "bin" / "textsr").exists():
        pytest.skip("make serve needs the project's .venv")
    port = free_port()
    env = {**os.environ, "TEXTSR_PORT": str(port), "TEXTSR_MODEL_DIR": str(model_dir)}
    proc = subprocess.Popen(["make", "serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("make serve did not become ready")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
