"""Provider choice, honest provider reporting, IOBinding and error wrapping, on a CPU machine."""

from __future__ import annotations

import numpy as np
import pytest

from service.engine import CPU, CUDA, OrtEngine, choose_providers
from service.errors import EngineError


class FakeSession:
    """Stands in for an InferenceSession that was asked for CUDA but fell back to CPU."""

    class _Arg:
        def __init__(self, name, shape):
            self.name, self.shape = name, shape

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def get_inputs(self):
        return [self._Arg("lr", ["N", 3, 16, 64])]

    def get_outputs(self):
        return [self._Arg("sr", ["N", 3, 32, 128])]

    def get_providers(self):
        return [CPU]

    def run(self, names, feeds):
        if self.fail:
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT")
        return [np.repeat(np.repeat(feeds["lr"], 2, 2), 2, 3)]


def test_choose_providers():
    assert choose_providers("auto", [CUDA, CPU], cuda_present=True) == [CUDA, CPU]
    assert choose_providers("auto", [CUDA, CPU], cuda_present=False) == [CPU]  # no libcudart/libcudnn: no noisy fallback
    assert choose_providers("cuda", [CUDA, CPU], cuda_present=False) == [CUDA, CPU]  # asked for explicitly: try it
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    with pytest.raises(EngineError, match="providers=cuda"):
        choose_providers("cuda", [CPU])


def test_reports_providers_in_use_not_requested():
    eng = OrtEngine(session=FakeSession())
    assert eng.providers == [CPU] and eng.device == "cpu" and not eng.use_io_binding
    assert eng(np.zeros((2, 3, 16, 64), np.float32)).shape == (2, 3, 32, 128)


def test_errors_are_wrapped():
    eng = OrtEngine(session=FakeSession(fail=True))
    with pytest.raises(EngineError, match="batch of 1"):
        eng(np.zeros((1, 3, 16, 64), np.float32))
    with pytest.raises(EngineError, match="float32 NCHW"):
        eng(np.zeros((1, 3, 16, 64), np.float64))


def test_real_session_with_and_without_io_binding(model_dir):
    path = next(model_dir.glob("*/model.onnx"))
    x = np.random.default_rng(0).random((3, 3, 16, 64), dtype=np.float32)
    plain = OrtEngine(path, providers="cpu")
    bound = OrtEngine(path, providers="cpu", use_io_binding=True)
    assert plain.providers == [CPU] and plain.input_shape[1:] == [3, 16, 64]
    np.testing.assert_array_equal(plain(x), bound(x))


def test_auto_on_a_machine_without_cuda_runs_on_cpu(model_dir):
    eng = OrtEngine(next(model_dir.glob("*/model.onnx")), providers="auto")
    assert eng.providers[-1] == CPU  # whatever was requested, we report what the session uses
    if eng.providers[0] == CPU:
        assert eng.device == "cpu"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs of quota -> 2 threads
        ({"cpu.max": "max 100000\n"}, None),  # no quota: the affinity mask decides
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # cgroup v1, one CPU
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_available_cpus_honours_container_quotas(tmp_path, files, expected):
    import os

    from service.engine import available_cpus

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == (min(expected, affinity) if expected else affinity)
