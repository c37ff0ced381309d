"""The ONNX Runtime session of one model: provider choice, session options, I/O binding.

Built from a model path or an injected ``InferenceSession`` (tests pass a fake). Providers are
checked after the session is created and :attr:`OrtEngine.providers` reports what the session
actually uses (onnxruntime-gpu silently falls back to CPU when CUDA libraries are missing).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import EngineError

log = logging.getLogger("textsr.engine")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


CUDA_LIBRARIES = ("libcudart.so.13", "libcudnn.so.9")
"""What onnxruntime-gpu 1.31's CUDA provider needs; without them it falls back to CPU with an error log."""


@functools.lru_cache(maxsize=1)
def cuda_runtime_present() -> bool:
    """Whether the CUDA runtime and cuDNN that the CUDA provider needs can be loaded here.

    onnxruntime-gpu's ``preload_dlls()`` loads them from the ``nvidia-*`` pip packages, but prints
    "Failed to load libcurand.so.10 ... install CUDA" for every one it misses: it runs only when
    those packages are installed, so a machine without CUDA stays quiet.
    """
    import importlib.util

    if importlib.util.find_spec("nvidia") is not None:
        try:
            import onnxruntime as ort

            if hasattr(ort, "preload_dlls"):
                ort.preload_dlls()
        except Exception:  # preloading is best effort; the check below decides
            pass
    for lib in CUDA_LIBRARIES:
        try:
            ctypes.CDLL(lib)
        except OSError:
            return False
    return True


def choose_providers(requested: str, available: list[str], cuda_present: bool | None = None) -> list[str]:
    """Providers to ask ONNX Runtime for: ``auto`` takes CUDA when the build offers it and its libraries load."""
    if requested == "cpu":
        return [CPU]
    if requested == "cuda" and CUDA not in available:
        raise EngineError(f"providers=cuda but this onnxruntime offers only {available}")
    if requested == "cuda":
        return [CUDA, CPU]
    if CUDA in available:
        if cuda_present if cuda_present is not None else cuda_runtime_present():
            return [CUDA, CPU]
        log.info("CUDA provider offered but %s not loadable: running on CPU", " / ".join(CUDA_LIBRARIES))
    return [CPU]


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup CPU quota.

    ``os.cpu_count()`` is the host's count; in a container limited to 2 CPUs on a 64-core node it
    would start 64 ORT threads that fight over 2 CPUs' worth of quota (Kubernetes ``limits.cpu``).
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = None
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        q, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        quota = None if q == "max" else int(q) / int(period)
    except (OSError, ValueError):
        try:  # cgroup v1
            q = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
            quota = q / int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text()) if q > 0 else None
        except (OSError, ValueError):
            pass
    return min(cpus, max(1, math.ceil(quota))) if quota else cpus


def session_options(intra_op_threads: int = 0) -> Any:
    """SessionOptions: all graph optimisations, quiet logs, threads matched to the CPUs this process may use."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    cores = available_cpus()
    opts.intra_op_num_threads = min(intra_op_threads, cores) if intra_op_threads > 0 else cores
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The batch dimension changes from run to run: a memory pattern is planned (and a block kept) per input shape,
    # which grew resident memory in ~80 MB steps whenever a new batch size first appeared under load.
    opts.enable_mem_pattern = False
    return opts


class OrtEngine:
    """``engine(x: float32 NCHW) -> float32 NCHW`` on one ONNX Runtime session."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        providers: str = "auto",
        intra_op_threads: int = 0,
        session: Any = None,
        use_io_binding: bool | None = None,
    ) -> None:
        if session is None:
            import onnxruntime as ort

            if model_path is None:
                raise ValueError("OrtEngine needs a model_path or a session")
            wanted = choose_providers(providers, ort.get_available_providers())
            try:
                session = ort.InferenceSession(str(model_path), session_options(intra_op_threads), providers=wanted)
            except Exception as exc:
                raise EngineError(f"cannot load {model_path}: {exc}") from None
            if CUDA in wanted and CUDA not in session.get_providers():
                log.warning("CUDA was requested for %s but ONNX Runtime runs it on %s", model_path, session.get_providers())
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        self.input_shape = list(session.get_inputs()[0].shape)
        self.providers: list[str] = list(session.get_providers())
        self.device = "cuda" if self.providers and self.providers[0] == CUDA else "cpu"
        self.use_io_binding = (self.device == "cuda") if use_io_binding is None else use_io_binding

    def __call__(self, x: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Run the graph on ``x`` (its first input); ``extra``: its other inputs by name (a text prior's)."""
        if x.dtype != np.float32 or x.ndim != 4:
            raise EngineError(f"engine input must be float32 NCHW, got {x.dtype} with shape {x.shape}")
        feeds = {self.input_name: x, **(extra or {})}
        try:
            if self.use_io_binding:
                return self._run_bound(feeds)
            return self.session.run([self.output_name], feeds)[0]
        except EngineError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"inference failed on a batch of {len(x)}: {exc}") from None

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run with IOBinding: inputs copied to the device once, output allocated by ORT on the device."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, x in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), self.device, 0))
        binding.bind_output(self.output_name, self.device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
