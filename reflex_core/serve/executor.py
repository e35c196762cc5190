"""The server's inference threads: a small fixed pool with a lean path from the event loop.

``loop.run_in_executor(ThreadPoolExecutor)`` costs ~50 us a call before the policy starts: a
``concurrent.futures.Future`` with its own condition variable, a work item, the pool's thread
accounting, and an asyncio future chained to the concurrent one through two more callbacks.
:meth:`InferenceExecutor.run` hands the thread the asyncio future itself and completes it with one
``call_soon_threadsafe``: ~35 us on the reference box, most of it the two thread wake-ups that no
hop can avoid. That is paid on every ``/act`` request and WebSocket frame.

It is still a :class:`concurrent.futures.Executor` (``submit``/``shutdown``), so wedges can use
the same bounded threads through ``ctx.executor`` (``loop.run_in_executor(ctx.executor, ...)``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class _LoopJob:
    """A call whose result goes to an asyncio future on ``loop``."""

    __slots__ = ("args", "context", "fn", "future", "loop", "on_done")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        context: contextvars.Context,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.loop, self.future, self.context, self.fn, self.args = loop, future, context, fn, args
        self.on_done = on_done

    def run(self) -> None:
        try:
            # A waiter cancelled before the call started no longer wants it (as with
            # run_in_executor); reading done() from this thread is a benign race.
            if self.future.done():
                return
            try:
                result = self.context.run(self.fn, *self.args)
            except BaseException as exc:
                self._post(_set_exception, exc)
            else:
                self._post(_set_result, result)
        finally:
            if self.on_done is not None:
                self._post(_call, self.on_done)

    def cancel(self) -> None:
        self._post(_cancel, None)
        if self.on_done is not None:
            self._post(_call, self.on_done)

    def _post(self, callback: Callable[[asyncio.Future[Any], Any], None], value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, self.future, value)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _cancel(future: asyncio.Future[Any], _value: Any) -> None:
    future.cancel()


def _call(_future: asyncio.Future[Any], callback: Callable[[], None]) -> None:
    callback()


class _PoolJob:
    """A ``submit()`` call: the plain ``concurrent.futures`` protocol."""

    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(
        self,
        future: concurrent.futures.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    def cancel(self) -> None:
        self.future.cancel()


class InferenceExecutor(concurrent.futures.Executor):
    """``max_workers`` threads sharing one queue; they start with the first call.

    The threads are daemons: a server that is never shut down does not keep its process alive
    (``ReflexServer.shutdown`` stops them).
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "reflex-infer") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_LoopJob | _PoolJob | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def run(
        self, fn: Callable[..., T], *args: Any, on_done: Callable[[], None] | None = None
    ) -> asyncio.Future[T]:
        """Call ``fn(*args)`` on a pool thread, in a copy of the caller's context (so log lines
        keep the request id); await the returned future for its result. Cancelling the future
        before a thread picks the call up means it never runs.

        :param on_done: called on the event loop once the thread is done with the call (it
            returned, raised, or was skipped as cancelled), even when the future was cancelled
            while the call ran: what a thread really has on its hands, not what is awaited.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put(_LoopJob(loop, future, contextvars.copy_context(), fn, args, on_done))
        return future

    def submit(  # type: ignore[override]
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(_PoolJob(future, fn, args, kwargs))
        return future

    def _put(self, job: _LoopJob | _PoolJob) -> None:
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new calls after shutdown")
            if not self._threads:
                for i in range(self.max_workers):
                    thread = threading.Thread(
                        target=self._work, name=f"{self._prefix}_{i}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
            self._queue.put(job)

    def _work(self) -> None:
        get = self._queue.get
        while (job := get()) is not None:
            job.run()
            del job  # drop the result's references before blocking again

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; with ``cancel_futures`` the queued ones are cancelled. Calls already
        running finish; ``wait`` blocks until they have."""
        with self._lock:
            self._shut_down = True
            if cancel_futures:
                while True:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        job.cancel()
            for _ in self._threads:
                self._queue.put(None)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
