"""The README is honest: its settings table is the Settings class, its commands parse, and its
curl, Python and tritonclient examples run against a live server; `make serve` starts the service."""

from __future__ import annotations

import base64
import io
import json
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


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG that decodes completely."""
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.size


def test_curl_examples_run(server, tmp_path, model_dir):
    """Every README curl answers 200 with what the README says it returns: the 2x PNG itself; JSON with base64 PNGs
    of the model's output size and the recognized text; a tiled line at 2x its aspect-kept width; text only."""
    from PIL import Image

    from core.manifest import read_manifest

    name = httpx.get(server.url + "/v1/models").json()["models"][0]["name"]
    manifest = read_manifest(model_dir / name)
    out_h, out_w = manifest.output.shape[2:]
    scale, (lr_h, _) = manifest.scale, manifest.lr_size
    sizes = {f: Image.open(ROOT / "tests/data" / f).size for f in ("word.png", "line.png")}
    png_out = tmp_path / "word_sr.png"

    def upscaled(result: dict, size: tuple[int, int]) -> None:
        assert (result["width"], result["height"]) == size and _png_size(base64.b64decode(result["image"])) == size

    def read(result: dict) -> None:
        assert isinstance(result["text"], str) and 0 <= result["confidence"] <= 1

    def png(body: str, ctype: str) -> None:
        assert body == "" and ctype == "image/png"
        assert _png_size(png_out.read_bytes()) == (out_w, out_h)

    w, h = sizes["line.png"]
    line_size = (scale * max(manifest.lr_size[1], round(w * lr_h / h)), out_h)  # tiled: the line's aspect, 2x

    def several_with_text(body: str, ctype: str) -> None:
        data = json.loads(body)
        assert data["model"] == name and data["mode"] == "auto"  # the default: the word resized, the long line tiled
        assert [(r["index"], r["filename"], (r["input_width"], r["input_height"]), r["mode"]) for r in data["results"]] == [
            (0, "word.png", sizes["word.png"], "resize"), (1, "line.png", sizes["line.png"], "tile")]
        upscaled(data["results"][0], (out_w, out_h))
        upscaled(data["results"][1], line_size)
        for r in data["results"]:
            read(r)

    def tiled(body: str, ctype: str) -> None:
        data = json.loads(body)
        assert data["mode"] == "tile" and len(data["results"]) == 1
        upscaled(data["results"][0], line_size)

    def text_only(body: str, ctype: str) -> None:
        data = json.loads(body)
        assert data["mode"] == "raw" and len(data["results"]) == 1
        r = data["results"][0]
        assert r["image"] is None and (r["width"], r["height"]) == sizes["word.png"]
        read(r)
        assert r["text"] == "BODIES"  # what tests/data/word.png says; the README recommends source=raw for text

    checks = {"Accept: image/png": png, "recognize=true": several_with_text, "mode=tile": tiled, "/v1/recognize?source=raw": text_only}
    curls = [c for c in commands() if c.startswith("curl")]
    assert len(curls) == 4
    done = []
    for cmd in curls:
        (key,) = [k for k in checks if k in cmd]
        cmd = cmd.replace("http://127.0.0.1:8000", server.url).replace("-o word_sr.png", f"-o {png_out}")
        out = subprocess.run(cmd + " -w '\n%{http_code} %{content_type}'", shell=True, capture_output=True, text=True, cwd=ROOT, timeout=60)
        body, _, status = out.stdout.rpartition("\n")
        code, _, ctype = status.partition(" ")
        assert out.returncode == 0 and code == "200", (cmd, out.stdout[-300:], out.stderr[-300:])
        checks[key](body, ctype)
        done.append(key)
    assert sorted(done) == sorted(checks)


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
