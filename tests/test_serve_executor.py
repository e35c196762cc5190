"""The server's inference threads (reflex_core.serve.executor.InferenceExecutor): results and
errors reach the awaiting coroutine, the caller's context travels, a call cancelled before it
starts never runs, the pool is bounded, it works as a concurrent.futures.Executor for wedges,
and shutdown cancels what is queued."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time

import pytest

from reflex_core.serve.executor import InferenceExecutor

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="-")


@pytest.mark.anyio
async def test_run_returns_the_result_on_a_named_pool_thread() -> None:
    executor = InferenceExecutor(1)
    try:
        name = await executor.run(lambda: threading.current_thread().name)
        assert name == "reflex-infer_0"
        assert await executor.run(pow, 2, 10) == 1024
    finally:
        executor.shutdown()


@pytest.mark.anyio
async def test_run_raises_the_call_error_and_the_pool_survives() -> None:
    executor = InferenceExecutor(1)

    def boom() -> None:
        raise ValueError("bad observation")

    try:
        with pytest.raises(ValueError, match="bad observation"):
            await executor.run(boom)
        assert await executor.run(int, "7") == 7
    finally:
        executor.shutdown()


@pytest.mark.anyio
async def test_run_carries_the_callers_context() -> None:
    executor = InferenceExecutor(1)
    token = request_var.set("req-42")
    try:
        assert await executor.run(request_var.get) == "req-42"
    finally:
        request_var.reset(token)
        executor.shutdown()


@pytest.mark.anyio
async def test_a_call_cancelled_before_it_starts_never_runs() -> None:
    executor = InferenceExecutor(1)
    release = threading.Event()
    ran: list[str] = []
    try:
        busy = executor.run(release.wait, 10)
        queued = executor.run(ran.append, "queued")
        queued.cancel()
        release.set()
        assert await busy is True
        assert await executor.run(ran.append, "after") is None
        assert ran == ["after"]
    finally:
        release.set()
        executor.shutdown()


@pytest.mark.anyio
async def test_at_most_max_workers_calls_run_at_once() -> None:
    executor = InferenceExecutor(2)
    lock = threading.Lock()
    running, peak = 0, 0

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    try:
        await asyncio.gather(*(executor.run(work) for _ in range(6)))
        assert peak == 2
        assert (
            len({t.name for t in threading.enumerate() if t.name.startswith("reflex-infer")}) >= 2
        )
    finally:
        executor.shutdown()


@pytest.mark.anyio
async def test_it_is_a_concurrent_futures_executor_for_wedges() -> None:
    executor = InferenceExecutor(1)
    try:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(executor, sum, [1, 2, 3]) == 6
        future = executor.submit(divmod, 7, 2)
        assert future.result(timeout=5) == (3, 1)
        failing = executor.submit(int, "x")
        with pytest.raises(ValueError):
            failing.result(timeout=5)
    finally:
        executor.shutdown()


@pytest.mark.anyio
async def test_shutdown_cancels_queued_calls_and_refuses_new_ones() -> None:
    executor = InferenceExecutor(1)
    release = threading.Event()
    busy = executor.run(release.wait, 10)
    queued_async = executor.run(int, "1")
    queued_pool = executor.submit(int, "2")
    await asyncio.sleep(0.05)  # let the thread take the first call
    executor.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert await busy is True
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(queued_async, 5)
    assert queued_pool.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(int, "3")
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.run(int, "4")
    for thread in executor._threads:
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_shutdown_waits_for_the_running_call() -> None:
    executor = InferenceExecutor(1)
    finished: list[bool] = []

    def slow() -> None:
        time.sleep(0.1)
        finished.append(True)

    future = executor.submit(slow)
    while not future.running() and not future.done():
        time.sleep(0.001)
    executor.shutdown(wait=True)
    assert finished == [True]
    assert isinstance(future, concurrent.futures.Future) and future.done()


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        InferenceExecutor(0)
