"""The README's conversion command is real: it converts the shipped default model's own checkpoint."""

from __future__ import annotations

import re
import shlex

import pytest

from core.manifest import read_manifest
from tests.conftest import ROOT
from textsr.cli import main

README = (ROOT / "README.md").read_text()


def test_readme_convert_command_runs(tmp_path):
    section = README.split("## Convert a PaddleOCR model")[1].split("\n## ")[0]
    command = re.search(r"```bash\n(.*?textsr convert.*?)```", section, re.S).group(1).replace("\\\n", " ").strip()
    args = shlex.split(command)[1:]
    checkpoint = ROOT / args[args.index("--checkpoint") + 1]
    if not checkpoint.is_file():
        pytest.fail(f"the README converts {checkpoint}, which is not in the repository")
    args[args.index("--out") + 1] = str(tmp_path / "out")
    assert main(args) == 0
    made = read_manifest(tmp_path / "out")
    shipped = read_manifest(ROOT / "models" / made.name)
    assert made.source["checkpoint_sha256"] == shipped.source["checkpoint_sha256"]
    assert made.source.get("overrides") == shipped.source.get("overrides")  # at the shipped residual strength
    assert made.graph().verification.max_abs_diff <= 1e-4
    assert "[1/" in README and "max |diff|" in README  # the README shows the command's output too
