"""The dynamic batcher: coalescing, ordering, splitting, capacity, timeouts, isolation, drain."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from service.batcher import DynamicBatcher
from service.errors import ModelNotReady, QueueFull, RequestTimeout, TextSRError

SHAPE = (2,)


class Recorder:
    """A fake engine: doubles its input, records batch sizes, optionally slow or poisoned."""

    def __init__(self, delay: float = 0.0, poison: float | None = None) -> None:
        self.sizes: list[int] = []
        self.delay, self.poison = delay, poison

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.poison is not None and (x == self.poison).any():
            raise ValueError("poisoned batch")
        self.sizes.append(len(x))
        time.sleep(self.delay)
        return x * 2


def run(coro):
    return asyncio.run(coro)


def make(engine, **kw) -> DynamicBatcher:
    opts = dict(max_batch_size=8, max_queue_delay_ms=50, capacity=100)
    opts.update(kw)
    b = DynamicBatcher(engine, SHAPE, **opts)
    b.start()
    return b


def items(*values: float) -> np.ndarray:
    return np.array([[v, v] for v in values], np.float32)


def test_concurrent_requests_are_coalesced_and_ordered():
    async def main():
        eng = Recorder()
        b = make(eng)
        outs = await asyncio.gather(*(b.submit(items(i, i + 0.5)) for i in range(4)))
        await b.close(5)
        return eng, outs

    eng, outs = run(main())
    assert eng.sizes == [8]  # four requests of two crops -> one batch
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(np.stack(out), items(i, i + 0.5) * 2)


def test_full_batch_flushes_before_the_delay():
    async def main():
        b = make(Recorder(), max_batch_size=4, max_queue_delay_ms=5_000)
        t = time.perf_counter()
        await b.submit(items(1, 2, 3, 4))
        elapsed = time.perf_counter() - t
        await b.close(5)
        return elapsed

    assert run(main()) < 1.0


def test_lone_request_waits_at_most_the_delay():
    async def main():
        eng = Recorder()
        b = make(eng, max_queue_delay_ms=30)
        t = time.perf_counter()
        await b.submit(items(1))
        elapsed = time.perf_counter() - t
        await b.close(5)
        return elapsed, eng.sizes

    elapsed, sizes = run(main())
    assert sizes == [1] and 0.02 < elapsed < 1.0


def test_large_request_is_split_across_batches():
    async def main():
        eng = Recorder()
        b = make(eng, max_batch_size=4, max_queue_delay_ms=1)
        out = await b.submit(items(*range(10)))
        await b.close(5)
        return eng.sizes, out

    sizes, out = run(main())
    assert sizes == [4, 4, 2]
    np.testing.assert_array_equal(np.stack(out), items(*range(10)) * 2)


def test_capacity_rejects_with_retry_after():
    async def main():
        b = make(Recorder(delay=0.3), max_batch_size=1, capacity=3, max_queue_delay_ms=0)
        first = asyncio.ensure_future(b.submit(items(1)))
        await asyncio.sleep(0.05)  # first is running; queue empty
        queued = asyncio.ensure_future(b.submit(items(2, 3, 4)))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as err:
            await b.submit(items(5))
        await asyncio.gather(first, queued)
        await b.close(5)
        return err.value

    err = run(main())
    assert err.headers == {"Retry-After": "1"} and "full" in err.message


def test_timeout_and_abandoned_items_are_not_run():
    async def main():
        eng = Recorder(delay=0.2)
        b = make(eng, max_batch_size=1, max_queue_delay_ms=0)
        slow = asyncio.ensure_future(b.submit(items(1)))
        await asyncio.sleep(0.02)
        with pytest.raises(RequestTimeout):
            await b.submit(items(2), timeout=0.05)  # waits behind the slow one, times out
        await slow
        await b.close(5)
        return eng.sizes

    assert run(main()) == [1]  # the timed-out item never ran


def test_bad_item_fails_only_its_request():
    async def main():
        b = make(Recorder(poison=13.0), max_queue_delay_ms=50)
        good = asyncio.ensure_future(b.submit(items(1, 2)))
        bad = asyncio.ensure_future(b.submit(items(13)))
        results = await asyncio.gather(good, bad, return_exceptions=True)
        after = await b.submit(items(3))
        await b.close(5)
        return results, after

    (good, bad), after = run(main())
    np.testing.assert_array_equal(np.stack(good), items(1, 2) * 2)
    assert isinstance(bad, TextSRError) and "poisoned" in str(bad)
    np.testing.assert_array_equal(np.stack(after), items(3) * 2)


def test_close_finishes_accepted_work_then_refuses():
    async def main():
        eng = Recorder(delay=0.05)
        b = make(eng, max_batch_size=2, max_queue_delay_ms=0)
        pending = [asyncio.ensure_future(b.submit(items(i))) for i in range(6)]
        await asyncio.sleep(0)
        assert await b.close(5)
        outs = [p.result() for p in pending]
        with pytest.raises(ModelNotReady):
            await b.submit(items(9))
        return outs

    outs = run(main())
    assert [float(o[0][0]) for o in outs] == [0, 2, 4, 6, 8, 10]


def test_wrong_item_shape_is_rejected():
    async def main():
        b = make(Recorder())
        try:
            await b.submit(np.zeros((1, 3), np.float32))
        finally:
            await b.close(5)

    with pytest.raises(TextSRError, match=r"shape \[2\]"):
        run(main())
