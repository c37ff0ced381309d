"""Provider choice, honest provider reporting, IOBinding and error wrapping, on a CPU machine."""

from __future__ import annotations

import numpy as np
import pytest

from service.engine import CPU, CUDA, OrtEngine, choose_providers
from service.errors import EngineError


class FakeSession:
    """Stands in for an InferenceSession; by default one that runs on the CPU only (e.g. asked for CUDA, fell back)."""

    class _Arg:
        def __init__(self, name, shape):
            self.name, self.shape = name, shape

    def __init__(self, fail: bool = False, providers: tuple[str, ...] = (CPU,)) -> None:
        self.fail = fail
        self.providers = list(providers)
        self.bindings: list[RecordingBinding] = []

    def get_inputs(self):
        return [self._Arg("lr", ["N", 3, 16, 64])]

    def get_outputs(self):
        return [self._Arg("sr", ["N", 3, 32, 128])]

    def get_providers(self):
        return self.providers

    def run(self, names, feeds):
        if self.fail:
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT")
        return [np.repeat(np.repeat(feeds["lr"], 2, 2), 2, 3)]

    def io_binding(self):
        self.bindings.append(RecordingBinding())
        return self.bindings[-1]

    def run_with_iobinding(self, binding):
        binding.ran = True
        binding.outputs = self.run(None, {"lr": binding.inputs["lr"].array})


class FakeOrtValue:
    """Stands in for onnxruntime.OrtValue: records the device a tensor was placed on."""

    def __init__(self, array, device, device_id):
        self.array, self.device, self.device_id = array, device, device_id

    @classmethod
    def ortvalue_from_numpy(cls, array, device="cpu", device_id=0):
        return cls(array, device, device_id)


class RecordingBinding:
    """Stands in for an IOBinding: records what it was asked to bind, and where."""

    def __init__(self) -> None:
        self.inputs: dict[str, FakeOrtValue] = {}
        self.output_devices: dict[str, str] = {}
        self.ran = False

    def bind_ortvalue_input(self, name, value):
        self.inputs[name] = value

    def bind_output(self, name, device_type="cpu", device_id=0):
        self.output_devices[name] = device_type

    def copy_outputs_to_cpu(self):
        return self.outputs


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


def test_real_session_with_and_without_io_binding(plain_model_dir):
    path = plain_model_dir / "model.onnx"
    x = np.random.default_rng(0).random((3, 3, 16, 64), dtype=np.float32)
    plain = OrtEngine(path, providers="cpu")
    bound = OrtEngine(path, providers="cpu", use_io_binding=True)
    assert plain.providers == [CPU] and plain.input_shape[1:] == [3, 16, 64]
    np.testing.assert_array_equal(plain(x), bound(x))


def test_cuda_requested_but_fallen_back_is_reported(monkeypatch, caplog):
    """Asked for CUDA, the session runs on CPU only: the engine reports CPU (not what it asked for), runs plain
    session.run on the host, and logs a warning naming what the session really uses."""
    import onnxruntime

    asked: list[list[str]] = []

    def fake_session(path, options, providers):
        asked.append(list(providers))
        return FakeSession(providers=(CPU,))

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(onnxruntime, "InferenceSession", fake_session)
    with caplog.at_level("WARNING", logger="textsr.engine"):
        eng = OrtEngine("m.onnx", providers="cuda")
    assert asked == [[CUDA, CPU]]
    assert eng.providers == [CPU] and eng.device == "cpu" and not eng.use_io_binding
    assert [r.getMessage() for r in caplog.records] == ["CUDA was requested for m.onnx but ONNX Runtime runs it on ['CPUExecutionProvider']"]
    assert eng(np.zeros((2, 3, 16, 64), np.float32)).shape == (2, 3, 32, 128) and eng.session.bindings == []


def test_cuda_session_runs_through_io_binding_on_the_device(monkeypatch, caplog):
    """A session that really runs on CUDA: device "cuda", no fallback warning, and each call binds the input as a
    CUDA tensor, asks for the output on CUDA, runs with the binding and returns the output copied to the host."""
    import onnxruntime

    session = FakeSession(providers=(CUDA, CPU))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda path, options, providers: session)
    monkeypatch.setattr(onnxruntime, "OrtValue", FakeOrtValue)
    with caplog.at_level("WARNING", logger="textsr.engine"):
        eng = OrtEngine("m.onnx", providers="cuda")
    assert caplog.records == []
    assert eng.providers == [CUDA, CPU] and eng.device == "cuda" and eng.use_io_binding
    x = np.random.default_rng(0).random((2, 3, 16, 64), dtype=np.float32)
    y = eng(x)
    (binding,) = session.bindings
    value = binding.inputs["lr"]
    assert (value.device, value.device_id) == ("cuda", 0) and value.array.flags.c_contiguous
    np.testing.assert_array_equal(value.array, x)
    assert binding.output_devices == {"sr": "cuda"} and binding.ran
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 2, 2), 2, 3))


def test_auto_on_this_machine_reports_what_it_runs_on(plain_model_dir):
    """auto takes CUDA only where the build offers it and its libraries load; on a CPU machine: CPU alone."""
    import onnxruntime

    from service.engine import cuda_runtime_present

    cuda = CUDA in onnxruntime.get_available_providers() and cuda_runtime_present()
    eng = OrtEngine(plain_model_dir / "model.onnx", providers="auto")
    assert eng.providers == ([CUDA, CPU] if cuda else [CPU])
    assert (eng.device, eng.use_io_binding) == (("cuda", True) if cuda else ("cpu", False))


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


def test_no_cuda_noise_on_a_machine_without_cuda(monkeypatch, capfd):
    """Without the nvidia-* packages, choosing providers never asks onnxruntime to preload CUDA (which prints
    "Failed to load libcurand..." on every run) and auto picks the CPU."""
    import importlib.util

    import onnxruntime as ort

    from service import engine

    calls = []
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: calls.append(1) or print("Failed to load libcurand.so.10"), raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nvidia" else real(name, *a))

    def no_library(name, *a, **k):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(engine.ctypes, "CDLL", no_library)  # a machine without CUDA, wherever the test runs
    engine.cuda_runtime_present.cache_clear()
    try:
        present = engine.cuda_runtime_present()
        providers = engine.choose_providers("auto", [engine.CUDA, engine.CPU])
    finally:
        engine.cuda_runtime_present.cache_clear()
    assert calls == [] and "Failed to load" not in capfd.readouterr().out
    assert not present and providers == [engine.CPU]


def rss_mb() -> float:
    """This process's resident memory, MB."""
    import resource

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def test_no_memory_pattern_per_batch_size(plain_model_dir):
    """The batch dimension varies per run; ORT's per-shape memory patterns each kept a planned block, so resident
    memory grew in ~80 MB steps whenever a new batch size first appeared (the soak bench's drift). Off, and after runs
    at every batch size 1..16 resident memory is back within a few MB of its level after the first pass."""
    from service.engine import session_options

    assert session_options().enable_mem_pattern is False
    engine = OrtEngine(plain_model_dir / "model.onnx", providers="cpu")

    def sweep() -> None:
        for n in range(1, 17):
            engine(np.zeros((n, 3, 16, 64), np.float32))

    sweep()
    first = rss_mb()
    sweep()
    sweep()
    assert rss_mb() - first < 20


def test_start_warms_up_with_the_largest_batch(plain_model_dir, monkeypatch):
    """Start-up runs each model once at the largest batch its batcher forms (``max_batch_size``), so ONNX Runtime's
    arena already holds what any later batch needs: with a one-crop warm-up, resident memory grew by tens of MB as
    larger batches first arrived under load (the 10-minute soak crept +5.7% over minutes 1-5). After start, runs at
    every batch size up to the largest leave resident memory within a few MB."""
    from service.local import LocalPipeline
    from service.settings import Settings

    seen: list[int] = []
    real_call = OrtEngine.__call__

    def spy(self, x):
        seen.append(len(x))
        return real_call(self, x)

    monkeypatch.setattr(OrtEngine, "__call__", spy)
    with LocalPipeline(Settings(providers="cpu", recognition=False, max_batch_size=12), model_folder=plain_model_dir) as p:
        assert seen == [12]  # the warm-up: one run, at the largest batch
        started = rss_mb()
        for n in [*range(1, 13), *range(12, 0, -1)]:
            assert p.infer(np.zeros((n, 3, 16, 64), np.float32)).shape == (n, 3, 32, 128)
        assert rss_mb() - started < 8
