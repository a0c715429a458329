"""Run per-item work in a pool of encoder processes, results in input order.

The work is described by a picklable config whose `start(stop_encoding)` makes the state one
process keeps between chunks: `state.process(chunk)` returns the chunk's results and
`state.finish()` commits that process's writes and returns what it summed. Segmentation pairs and
colorization images both run through here.

Processes come from a forkserver, not a plain fork, so the caller may be a threaded web server
or hold open LMDB environments (which must never cross a fork). With one worker everything runs
in the calling process, which keeps small jobs and tests free of process start-up.
"""
import multiprocessing
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from digitslite.datasets.encoder import bound_memory, end_quietly_on_broken_pipe
from digitslite.datasets.lmdb_writer import StopFlag

MAX_CHUNK = 4
BARRIER_TIMEOUT_S = 600
WAIT_S = 0.5  # longest the parent waits for a result without looking up


class WorkState(Protocol):
    def process(self, items: list) -> list: ...

    def finish(self) -> Any: ...


class WorkConfig(Protocol):
    def start(self, stop_encoding: StopFlag) -> WorkState: ...


def chunked(items: list, workers: int) -> list[list]:
    """Chunks of a few items: a message each way costs far less than an item's encoding, and at the
    end no worker waits long for another to finish its last chunk."""
    size = max(1, min(MAX_CHUNK, len(items) // (workers * 4)))
    return [items[start:start + size] for start in range(0, len(items), size)]


def pool_context(preload: str) -> multiprocessing.context.BaseContext:
    """The forkserver (spawn where there is none), which preloads the work's module once so each
    encoder process starts without importing it again."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([preload])
        return context
    return multiprocessing.get_context("spawn")


class LocalFlag:
    """Stands in for a multiprocessing.Event when the work runs in the calling process."""

    def __init__(self) -> None:
        self._value = False

    def set(self) -> None:
        self._value = True

    def is_set(self) -> bool:
        return self._value


_pool_state: dict = {}


def _init_pool_worker(config: WorkConfig, stop_encoding: StopFlag, barrier) -> None:
    """Pool initializer: bounded memory, this process's state, and the barrier _finish_pool_worker
    waits at."""
    bound_memory()
    end_quietly_on_broken_pipe()
    _pool_state.update(state=config.start(stop_encoding), barrier=barrier)


def _process_pool_chunk(items: list) -> list:
    return _pool_state["state"].process(items)


def _finish_pool_worker(_: int) -> Any:
    """state.finish() in a pool process. Submitted once per worker after all chunks: each task
    waits at a barrier for the others, so no process can take two and every process finishes."""
    _pool_state["barrier"].wait(BARRIER_TIMEOUT_S)
    return _pool_state["state"].finish()


class WorkerPool:
    """Context manager: `results(chunks)` yields each chunk's results in order; `finish()` then
    commits the workers' writes and returns each process's `finish()` value."""

    def __init__(self, config: WorkConfig, workers: int) -> None:
        self._config = config
        self._workers = workers
        self._pool = None
        self._local: WorkState | None = None

    def __enter__(self) -> "WorkerPool":
        if self._workers > 1:
            context = pool_context(type(self._config).__module__)
            self._stop_encoding = context.Event()
            self._pool = context.Pool(self._workers, _init_pool_worker,
                                      (self._config, self._stop_encoding, context.Barrier(self._workers)))
        else:
            self._stop_encoding = LocalFlag()
            self._local = self._config.start(self._stop_encoding)
        return self

    def results(self, chunks: Iterable[list]) -> Iterator[list | None]:
        """Each chunk's results in order; with a pool also None whenever WAIT_S pass without one, so
        that the caller can look at its stop flag while an encoder is stuck on a slow file."""
        if self._pool is None:
            yield from (self._local.process(chunk) for chunk in chunks)
            return
        results = self._pool.imap(_process_pool_chunk, chunks)
        while True:
            try:
                yield results.next(timeout=WAIT_S)
            except multiprocessing.TimeoutError:
                yield None
            except StopIteration:
                return

    def stop_encoding(self) -> None:
        """Workers skip encoding and writing from now on (the dataset will not be published)."""
        self._stop_encoding.set()

    def finish(self) -> list:
        """Commit and close every worker's writers; return their finish() values. Call once, after
        consuming results()."""
        if self._pool is None:
            part, self._local = self._local.finish(), None
            return [part]
        return self._pool.map(_finish_pool_worker, range(self._workers), chunksize=1)

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
        elif self._local is not None:
            self._local.abandon()
