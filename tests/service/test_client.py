"""The Python client (sync and async, retries on 503) and `textsr upscale` (in-process and --server)."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from tests.service.conftest import png_bytes, render_word
from textsr.cli import main
from textsr.client import AsyncClient, Client, ServiceError


def test_sync_client(server, tmp_path):
    word = render_word("WINDOW", 32, 128)
    (tmp_path / "w.png").write_bytes(png_bytes(word))
    with Client(server.url) as c:
        assert c.ready()
        res = c.upscale([tmp_path / "w.png", word], recognize=True)
        assert [r.filename for r in res] == ["w.png", "image1.png"]
        assert res[0].image.shape == (32, 128, 3) and res[0].text is not None
        assert c.recognize([word], source="raw")[0].text == "WINDOW"
        assert c.models()["models"][0]["scale"] == 2
        with pytest.raises(ServiceError) as err:
            c.upscale([b"not an image"])
        assert err.value.status == 400 and err.value.code == "invalid_image"


def test_async_client(server):
    async def run():
        async with AsyncClient(server.url) as c:
            return await asyncio.gather(*(c.upscale([render_word(w, 16, 64)]) for w in ("a", "bb", "ccc")))

    assert [r[0].width for r in asyncio.run(run())] == [128, 128, 128]


def test_client_retries_on_503_with_retry_after():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": {"code": "queue_full", "message": "full"}})
        return httpx.Response(200, json={"results": [{"image": None, "width": 128, "height": 32, "text": "ok"}]})

    c = Client("http://test", retries=4, backoff=0.0)
    c._http = httpx.Client(base_url="http://test", transport=httpx.MockTransport(handler))
    assert c.upscale([b"x"])[0].text == "ok" and len(calls) == 3
    calls.clear()
    c.retries = 1
    with pytest.raises(ServiceError) as err:
        c.upscale([b"x"])
    assert err.value.status == 503 and err.value.code == "queue_full" and len(calls) == 2


def test_upscale_cli_in_process_and_server(server, model_dir, tmp_path, capsys):
    files = []
    for i, w in enumerate(("north", "exit")):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(png_bytes(render_word(w, 16, 64)))
    assert main(["upscale", *map(str, files), "--out", str(tmp_path / "local"), "--model-dir", str(model_dir), "--grid"]) == 0
    assert main(["upscale", *map(str, files), "--out", str(tmp_path / "remote"), "--server", server.url]) == 0
    for f in files:
        a = (tmp_path / "local" / f"{f.stem}_sr.png").read_bytes()
        b = (tmp_path / "remote" / f"{f.stem}_sr.png").read_bytes()
        import io

        from PIL import Image

        ia, ib = (np.asarray(Image.open(io.BytesIO(x))) for x in (a, b))
        assert ia.shape == (32, 128, 3) and np.abs(ia.astype(int) - ib.astype(int)).max() <= 1
    assert (tmp_path / "local" / "grid.png").stat().st_size > 1000
    assert main(["upscale", str(tmp_path / "missing.png"), "--out", str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_one_error_tree_and_one_line_from_the_cli(tmp_path, capsys, repo_root):
    """Every package's errors derive from core.errors.TextSRError; the CLI prints one line for them (exit 2)
    and a traceback only with --debug."""
    import pytest

    from convert.errors import ConversionError, VerificationError
    from core.errors import ConfigError, DataError, InputNotFound, TextSRError
    from service.errors import InvalidImage, ModelLoadError
    from textsr.cli import main
    from textsr.client import ServiceError
    from training.networks import CheckpointMismatch

    for cls in (ConversionError, VerificationError, InvalidImage, ModelLoadError, ServiceError, ConfigError, DataError,
                InputNotFound, CheckpointMismatch):
        assert issubclass(cls, TextSRError), cls
    assert issubclass(ConfigError, ValueError) and issubclass(InputNotFound, FileNotFoundError)

    bad = tmp_path / "bad.yml"
    bad.write_text("Globl: {}\n")
    assert main(["train", "-c", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("textsr train: error:") and "unknown top-level sections ['Globl']" in err[0]
    assert main(["eval", "--model-dir", str(tmp_path / "nope"), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(ConfigError):
        main(["--debug", "train", "-c", str(bad)])
