"""Run the per-pair work in a pool of encoder processes, results in input order.

Processes come from a forkserver, not a plain fork, so the caller may be a threaded web server
or hold open LMDB environments (which must never cross a fork). With one worker everything runs
in the calling process, which keeps small jobs and tests free of process start-up.
"""
import multiprocessing
from collections.abc import Iterable, Iterator

from digitslite.datasets import worker
from digitslite.datasets.mean import MeanAccumulator
from digitslite.datasets.worker import ItemResult, WorkerConfig, WorkItem

MAX_CHUNK = 4
WAIT_S = 0.5  # longest the parent waits for a result without looking up


def chunked(items: list[WorkItem], workers: int) -> list[list[WorkItem]]:
    """Chunks of a few pairs: a message each way costs far less than a pair's encoding, and at the
    end no worker waits long for another to finish its last chunk."""
    size = max(1, min(MAX_CHUNK, len(items) // (workers * 4)))
    return [items[start:start + size] for start in range(0, len(items), size)]


def pool_context() -> multiprocessing.context.BaseContext:
    """The forkserver (spawn where there is none), which preloads the worker's modules once so each
    encoder process starts without importing them again."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["digitslite.datasets.worker"])
        return context
    return multiprocessing.get_context("spawn")


class WorkerPool:
    """Context manager: `results(chunks)` yields each chunk's item results in order; `finish()`
    then commits the workers' LMDB writes and returns the merged mean sum of the training images."""

    def __init__(self, config: WorkerConfig, workers: int) -> None:
        self._config = config
        self._workers = workers
        self._pool = None
        self._local: worker.WorkerState | None = None

    def __enter__(self) -> "WorkerPool":
        if self._workers > 1:
            context = pool_context()
            self._stop_encoding = context.Event()
            self._pool = context.Pool(self._workers, worker.init_pool_worker,
                                      (self._config, self._stop_encoding, context.Barrier(self._workers)))
        else:
            self._stop_encoding = worker.LocalFlag()
            self._local = worker.WorkerState(self._config, self._stop_encoding)
        return self

    def results(self, chunks: Iterable[list[WorkItem]]) -> Iterator[list[ItemResult] | None]:
        """Each chunk's results in order; with a pool also None whenever WAIT_S pass without one, so
        that the caller can look at its stop flag while an encoder is stuck on a slow file."""
        if self._pool is None:
            yield from (worker.process_chunk(chunk, self._local) for chunk in chunks)
            return
        results = self._pool.imap(worker.process_pool_chunk, chunks)
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

    def finish(self) -> MeanAccumulator:
        """Commit and close every worker's writers; return their mean sums merged. Call once, after
        consuming results()."""
        if self._pool is None:
            mean, self._local = self._local.finish(), None
            return mean
        merged = MeanAccumulator()
        for part in self._pool.map(worker.finish_pool_worker, range(self._workers), chunksize=1):
            merged.merge(part)
        return merged

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
        elif self._local is not None and self._local.writers is not None:
            self._local.writers.close(commit=False)
