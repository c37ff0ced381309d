"""service.__all__ lists exactly the public names, sorted (as httpx's test_exported_members)."""

import service


def test_all_is_sorted_and_complete():
    public = sorted(n for n in dir(service) if not n.startswith("_") and n[0].isupper())
    assert service.__all__ == sorted(service.__all__)
    assert set(service.__all__) == set(public)


def test_service_never_imports_paddle():
    import subprocess
    import sys

    code = "import sys, service, service.http.app, service.http.server, textsr.cli; textsr.cli.build_parser(); print('paddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


BLOCK_WEB = """
import importlib.abc, sys
class NoWeb(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("fastapi", "starlette", "uvicorn"):
            raise ImportError(f"{name} is made unimportable by the test")
sys.meta_path.insert(0, NoWeb())
"""


def test_runtime_runs_without_the_web_stack(tmp_path, repo_root):
    """The runtime (settings ... LocalPipeline) imports and serves with fastapi, starlette and uvicorn unimportable,
    and `textsr upscale` / `textsr eval` run on it; the HTTP app is only an adapter."""
    import json
    import subprocess
    import sys

    code = BLOCK_WEB + f"""
import numpy as np
import service
from service import LocalPipeline, Settings
from textsr.cli import main
assert not [m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette", "uvicorn")]
with LocalPipeline(Settings(providers="cpu")) as p:
    crop = np.random.default_rng(0).integers(0, 256, (16, 64, 3), dtype=np.uint8)
    (r,) = p.upscale([crop], recognize=True)
    line = np.random.default_rng(1).integers(0, 256, (16, 300, 3), dtype=np.uint8)
    (t,) = p.upscale([line], mode="tile")
    print(json.dumps({{"sr": list(r.sr.shape), "text": isinstance(r.text, str), "tile": list(t.sr.shape),
                       "infer": list(p.infer(np.zeros((2, 3, 16, 64), np.float32)).shape)}}))
assert main(["upscale", "{repo_root}/tests/data/word.png", "--out", "{tmp_path}/up", "--recognize"]) == 0
from training.data.synth import generate
generate("{tmp_path}/data", train=0, test=2, seed=1, progress=False)
assert main(["eval", "--model-dir", "{repo_root}/models/gestalt-tsrn-synth", "--data", "{tmp_path}/data/test",
             "--out", "{tmp_path}/ev", "--grid-rows", "0"]) == 0
assert not [m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette", "uvicorn")]
"""
    code = "import json, sys\n" + code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith('{"sr"')))
    assert result == {"sr": [32, 128, 3], "text": True, "tile": [32, 600, 3], "infer": [2, 3, 32, 128]}
    assert (tmp_path / "up" / "word_sr.png").stat().st_size > 1000
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["average"]["sr_vs_bicubic"]["heldout"]["crops"] == 8  # 2 crops x 4 test splits
