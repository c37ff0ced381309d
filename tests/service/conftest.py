"""Service fixtures: a model folder and real `textsr serve` processes over HTTP on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def model_dir(models_root) -> Path:
    """The folder of model folders the servers load."""
    return models_root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A `textsr serve` child process on a free loopback port."""

    def __init__(self, model_dir: Path, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "TEXTSR_MODEL_DIR": str(model_dir), "TEXTSR_PORT": str(self.port), "TEXTSR_PROVIDERS": "cpu", **env}
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "textsr", "serve"], env=full_env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait_ready(self, timeout: float = 60) -> ServerProcess:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def start_server(model_dir, tmp_path_factory):
    """Factory: start a server with extra TEXTSR_* settings; all are stopped at session end."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        log = tmp_path_factory.mktemp("server") / "server.log"
        server = ServerProcess(model_dir, log, **env).wait_ready()
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def server(start_server) -> ServerProcess:
    """The default server, with a batching window wide enough to coalesce concurrent requests."""
    return start_server(TEXTSR_MAX_QUEUE_DELAY_MS="20", TEXTSR_MAX_BATCH_SIZE="16")


def render_word(word: str, height: int = 32, width: int = 128) -> np.ndarray:
    """A clean dark word on a light background (RGB uint8), via the bundled DejaVu font."""
    from PIL import Image, ImageDraw, ImageFont

    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    font = ImageFont.truetype(font_path, int(height * 0.75)) if os.path.exists(font_path) else ImageFont.load_default()
    img = Image.new("RGB", (width, height), (235, 235, 230))
    box = ImageDraw.Draw(img).textbbox((0, 0), word, font=font)
    x = max(0, (width - (box[2] - box[0])) // 2 - box[0])
    y = max(0, (height - (box[3] - box[1])) // 2 - box[1])
    ImageDraw.Draw(img).text((x, y), word, font=font, fill=(20, 20, 30))
    return np.asarray(img)


def png_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return buf.tobytes()
