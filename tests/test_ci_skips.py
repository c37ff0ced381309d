"""In CI (CI=true) a skipped test fails the run and the summary says which skipped and why; elsewhere a skip
passes (tests/conftest.py's hook, run here on a tiny suite in a child pytest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SUITE = {
    "conftest.py": "from tests.conftest import pytest_configure  # noqa: F401 - the hook under test\n",
    "test_runs.py": """
import pytest

def test_passes():
    pass

def test_skips_at_run_time():
    pytest.skip("wrk is not installed")

@pytest.fixture
def needs_tool():
    pytest.importorskip("no_such_module_textsr", reason="tool missing in setup")

def test_skips_in_setup(needs_tool):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
""",
    "test_collect.py": "import pytest\npytest.importorskip('no_such_module_textsr', reason='module needs an extra')\n",
}


def run_suite(tmp_path: Path, ci: str | None, files: dict[str, str] = SUITE) -> subprocess.CompletedProcess:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(ROOT)}
    if ci is not None:
        env["CI"] = ci
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_skips_fail_the_run_in_ci(tmp_path):
    out = run_suite(tmp_path, "true")
    assert out.returncode == 1, out.stdout
    assert "3 skipped: skips fail the run in CI (CI=true)" in out.stdout
    for line in ("SKIPPED test_collect.py: module needs an extra", "SKIPPED test_runs.py::test_skips_at_run_time: wrk is not installed",
                 "SKIPPED test_runs.py::test_skips_in_setup: tool missing in setup"):
        assert line in out.stdout, out.stdout
    assert "test_expected_failure" not in out.stdout.split("skips fail the run")[1]  # an xfail is no skip


@pytest.mark.parametrize("ci", [None, "false"])
def test_skips_pass_outside_ci(tmp_path, ci):
    out = run_suite(tmp_path, ci)
    assert out.returncode == 0 and "skips fail the run" not in out.stdout, out.stdout


def test_ci_without_skips_passes_and_failures_still_fail(tmp_path):
    assert run_suite(tmp_path, "true", {"conftest.py": SUITE["conftest.py"], "test_ok.py": "def test_ok():\n    pass\n"}).returncode == 0
    assert run_suite(tmp_path, "true", {"test_ok.py": "def test_ok():\n    assert False\n"}).returncode == 1
