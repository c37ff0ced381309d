"""Shared fixtures: tiny real assets made on the fly (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


class SkipsFailInCI:
    """In CI (``CI=true``) a skipped test fails the run, so a missing install step cannot hide behind a green CI:
    every skip, at collection or at run time (an xfail is not a skip), is listed with its reason at the end, and
    the exit status becomes 1. Registered by :func:`pytest_configure`, one per run."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.skipped:
            terminalreporter.section(f"{len(self.skipped)} skipped: skips fail the run in CI (CI=true)", red=True)
            for nodeid, reason in self.skipped:
                terminalreporter.line(f"SKIPPED {nodeid}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI", "").lower() == "true":
        config.pluginmanager.register(SkipsFailInCI(), "textsr-skips-fail-in-ci")


FP16_MARGIN = 2.0
FP16_FLOOR = 2.0**-11
FP16_WITHOUT_RECORD = 1e-2


def fp16_bound(model_folder: Path) -> float:
    """How far a test lets an fp16 run of a model be from its fp32 output: FP16_MARGIN x the max |diff| that the
    model's conversion measured for its fp16 graph and recorded in manifest.json (at least FP16_FLOOR, one fp16 step
    at 1.0), not the converter's 5e-2 gate (13 grey levels). On unseen crops the fp16 graphs measure 0.6-1.05x their
    record (shipped default: 1.1e-3 to 1.8e-3 vs 1.85e-3), so 2x is the margin. Without an fp16 graph:
    FP16_WITHOUT_RECORD (2.5 grey levels)."""
    from core.manifest import read_manifest

    graphs = {g.precision: g for g in read_manifest(model_folder).graphs}
    if "fp16" not in graphs:
        return FP16_WITHOUT_RECORD
    return max(FP16_MARGIN * graphs["fp16"].verification.max_abs_diff, FP16_FLOOR)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def convert_random_tsrn(tmp: Path) -> Path:
    """A folder of one converted TSRN with random weights (no text prior): ``tmp/m/test-tsrn``."""
    pytest.importorskip("paddle", reason="no shipped model of this kind and no paddle to convert one")
    import paddle

    from convert.pipeline import convert
    from training.networks import build_network, save_checkpoint

    paddle.seed(0)
    ckpt = save_checkpoint(build_network("TSRN"), tmp / "ckpt.pdparams")
    convert(tmp / "m" / "test-tsrn", config=ROOT / "training/configs/sr_tsrn_transformer_strock.yml", checkpoint=ckpt, log=lambda s: None)
    return tmp / "m"


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    """A folder of converted models: the shipped models/ if it has one, else a random TSRN converted here."""
    if any((ROOT / "models").glob("*/manifest.json")):
        return ROOT / "models"
    return convert_random_tsrn(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def plain_model_dir(models_root, tmp_path_factory) -> Path:
    """A converted model folder whose graph takes the image alone (no text prior), for tests of the ONNX Runtime
    engine itself: a shipped one if there is one, else a random TSRN converted here."""
    from core.manifest import read_manifest

    for manifest in sorted(models_root.glob("*/manifest.json")):
        if read_manifest(manifest.parent).text_prior is None:
            return manifest.parent
    return next(convert_random_tsrn(tmp_path_factory.mktemp("plain")).iterdir())


@pytest.fixture(scope="session")
def model_dir_any(models_root) -> Path:
    """One converted model folder (model.onnx + manifest.json)."""
    return sorted(models_root.glob("*/manifest.json"))[0].parent


@pytest.fixture(scope="session")
def prior_network():
    """A factory of the same small TSRN with a text prior that moves its output (tail, trunk output and prior
    projections away from zero; with ``prior_rows`` its rows, with ``prior_glyphs`` its drawing's convolution, with ``prior_glyph_tail`` its tail too), so a
    parity or a probe on it tests the prior too."""

    def build(**kwargs):
        import paddle

        from training.networks import build_network

        paddle.seed(3)
        net = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True, **kwargs)
        with paddle.no_grad():
            for name, p in net.named_parameters():
                if name.startswith(("block4", "block3.1", "prior_proj", "prior.rows", "prior.glyph", "prior.tail")) and not name.endswith(("_mean", "_variance")):
                    p.set_value(paddle.randn(p.shape) * (0.05 if name.startswith(("block4", "prior.tail")) else 0.5))
        return net

    return build
