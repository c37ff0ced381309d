"""Dynamic batching of single crops across concurrent requests, Triton style.

``await batcher.submit(crops)`` queues each crop of a request as its own item and returns the
results in the request's order. One worker task forms batches in arrival order, flushing when
``max_batch_size`` items are waiting or the oldest has waited ``max_queue_delay_ms``; a large
request is split across batches. Inference runs on a dedicated thread so the event loop (health,
metrics) stays responsive. A failing batch is retried item by item, so a bad item fails only its
own request. The batcher knows nothing of HTTP or images.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from service.errors import InvalidRequest, ModelNotReady, PayloadTooLarge, QueueFull, RequestTimeout, TextSRError

log = logging.getLogger("textsr.batcher")


class BatchObserver(Protocol):
    """Receives one call per executed batch (metrics)."""

    def __call__(self, size: int, queue_waits: list[float], run_seconds: float) -> None: ...


@dataclass
class _Item:
    crop: np.ndarray
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Coalesces items into batches for ``run(batch [n, *item_shape]) -> n results``."""

    def __init__(
        self,
        run: Callable[[np.ndarray], Sequence[Any]],
        item_shape: tuple[int, ...],
        *,
        max_batch_size: int,
        max_queue_delay_ms: float,
        capacity: int,
        name: str = "model",
        observer: BatchObserver | None = None,
    ) -> None:
        self._run = run
        self.item_shape = tuple(item_shape)
        self.max_batch_size = max_batch_size
        self.max_delay = max_queue_delay_ms / 1000.0
        self.capacity = capacity
        self.name = name
        self._observer = observer
        self._pending: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._closed = False
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{name}")
        self._buffer = np.empty((max_batch_size, *self.item_shape), np.float32)
        self.batches_run = 0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")

    @property
    def depth(self) -> int:
        """Items waiting (not yet in a running batch)."""
        return sum(1 for it in self._pending if not it.future.done())

    @property
    def accepting(self) -> bool:
        return not self._closed and self._task is not None and not self._task.done()

    async def close(self, timeout: float) -> bool:
        """Refuse new work, finish everything accepted, stop. Returns False if ``timeout`` ran out."""
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()
        done = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except asyncio.TimeoutError:
                done = False
                self._task.cancel()
        self._executor.shutdown(wait=done)
        return done

    # -- requests -----------------------------------------------------------------------
    async def submit(self, crops: np.ndarray, timeout: float | None = None) -> list[Any]:
        """Queue ``crops`` [k, *item_shape]; return their k results in order."""
        if not self.accepting:
            raise ModelNotReady(f"model {self.name!r} is not accepting work (starting or shutting down)")
        if crops.ndim != len(self.item_shape) + 1 or tuple(crops.shape[1:]) != self.item_shape:
            raise InvalidRequest(f"items must have shape {list(self.item_shape)}, got {list(crops.shape[1:])}")
        if len(crops) > self.capacity:
            raise PayloadTooLarge(f"{len(crops)} crops in one request can never fit a queue of {self.capacity}")
        queued = self.depth
        if queued + len(crops) > self.capacity:
            raise QueueFull(
                f"queue of model {self.name!r} is full ({queued} of {self.capacity} crops waiting); retry shortly",
                headers={"Retry-After": "1"},
            )
        loop = asyncio.get_running_loop()
        items = [_Item(np.asarray(c, np.float32), loop.create_future()) for c in crops]
        self._pending.extend(items)
        assert self._wakeup is not None
        self._wakeup.set()
        gathered = asyncio.gather(*(it.future for it in items))
        try:
            return list(await asyncio.wait_for(gathered, timeout))
        except asyncio.TimeoutError:
            raise RequestTimeout(f"request not served within {timeout:g} s ({len(crops)} crops)") from None
        finally:
            for it in items:  # a timed-out or abandoned request leaves nothing behind to run
                if not it.future.done():
                    it.future.cancel()

    # -- worker -------------------------------------------------------------------------
    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        while self._pending and len(batch) < self.max_batch_size:
            item = self._pending.popleft()
            if not item.future.done():
                batch.append(item)
        return batch

    async def _worker(self) -> None:
        assert self._wakeup is not None
        while True:
            while self._pending and self._pending[0].future.done():
                self._pending.popleft()
            if not self._pending:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._pending[0].enqueued + self.max_delay
            while len(self._pending) < self.max_batch_size and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            if batch:
                try:
                    await self._execute(batch)
                except Exception:  # never let the worker die: fail the batch, keep serving
                    log.exception("batch of %d failed unexpectedly", len(batch))
                    for it in batch:
                        if not it.future.done():
                            it.future.set_exception(TextSRError("internal error while running a batch"))

    async def _execute(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        n = len(batch)
        x = self._buffer[:n]
        np.stack([it.crop for it in batch], out=x)
        start = time.perf_counter()
        waits = [start - it.enqueued for it in batch]
        try:
            results = await loop.run_in_executor(self._executor, self._run, x)
            if len(results) != n:
                raise TextSRError(f"engine returned {len(results)} results for {n} items")
        except Exception as exc:
            if n == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc if isinstance(exc, TextSRError) else TextSRError(str(exc)))
                return
            log.warning("batch of %d failed (%s); retrying item by item", n, exc)
            for it in batch:  # isolate the bad item: only its own request fails
                await self._execute([it])
            return
        elapsed = time.perf_counter() - start
        self.batches_run += 1
        for it, result in zip(batch, results):
            if not it.future.done():
                it.future.set_result(result)
        if self._observer is not None:
            self._observer(n, waits, elapsed)
