"""Prometheus metrics of one app instance (its own registry), named by Prometheus conventions.

Mapping to Triton's names for dashboards that expect them: ``textsr_requests_total`` ~
``nv_inference_request_success``/``_failure`` (by status), ``textsr_crops_total`` ~
``nv_inference_count``, ``textsr_batch_size_count`` ~ ``nv_inference_exec_count``,
``textsr_queue_wait_seconds`` ~ ``nv_inference_queue_duration_us``, ``textsr_inference_seconds``
~ ``nv_inference_compute_infer_duration_us``, ``textsr_queue_depth`` ~ ``nv_inference_pending_request_count``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """All metric families of the service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("textsr_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"], registry=r)
        self.latency = Histogram("textsr_request_duration_seconds", "HTTP request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("textsr_queue_wait_seconds", "time a crop waited for its batch", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("textsr_inference_seconds", "time of one batched inference run", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("textsr_batch_size", "crops per inference run", ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.crops = Counter("textsr_crops", "crops run through a model", ["model"], registry=r)
        self.queue_depth = Gauge("textsr_queue_depth", "crops waiting for a batch", ["model"], registry=r)
        self.in_flight = Gauge(
            "textsr_requests_in_flight", "image/tensor requests admitted and not answered yet (limit: TEXTSR_MAX_INFLIGHT_REQUESTS)", registry=r,
        )
        self.model_info = Gauge(
            "textsr_model_info", "loaded models (value 1) and the execution provider they run on",
            ["model", "algorithm", "backbone", "precision", "provider"], registry=r,
        )

    def observer(self, model: str) -> Callable[[int, list[float], float], None]:
        """A batcher observer that records one executed batch of ``model``."""
        wait, infer, size, crops = (m.labels(model=model) for m in (self.queue_wait, self.inference, self.batch_size, self.crops))

        def observe(n: int, waits: list[float], seconds: float) -> None:
            for w in waits:
                wait.observe(w)
            infer.observe(seconds)
            size.observe(n)
            crops.inc(n)

        return observe

    def track_depth(self, model: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model=model).set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
