"""This node's rank processes, started and watched by torch's elastic process API, as torchrun does.

`torch.distributed.elastic.multiprocessing.start_processes` spawns one process per local rank
running a function, gives each its variables, returns what each function returned, records the
exception a rank ended with (its error file). Ours, on top (docs/DESIGN-NOTES.md, "... ranks are
started by torch's elastic launcher"): each rank leads its own process group, so that a kill takes
its data loader workers and a Ctrl-C at the terminal reaches only the launcher, which turns it into a
stop request; a rank whose launcher is gone ends, even when it was SIGKILLed; a stop request reaches
each rank as SIGTERM; a rank that ends before all functions returned is a failure, which SIGKILLs
every rank at once (torch's own teardown gives each survivor 30 s after a SIGTERM, and one blocked
in a collective with the dead rank takes all of them); and the failure is reported as
RanksInterrupted, without torch's log of it.
"""
import contextlib
import logging
import os
import select
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, start_processes
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from digitslite.engine.launch import RanksInterrupted, Rendezvous, describe_exit

WATCH_INTERVAL_S = 0.1        # how often should_stop, `watch` and the ranks are looked at
# start_processes() points these at a handler of its own (torchrun's agent stops on them); the
# launcher's caller keeps its meaning for them (a stop request): they are blocked while it runs (a
# signal then waits for the caller's handler, put back after it) and unblocked in each rank.
_CALLERS_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
# The loggers through which torch reports a failed rank (the traceback of its own join, "Terminating
# process ..."), above the launcher's one message about it: quiet while the ranks run.
_TORCH_FAILURE_LOGGERS = ("torch.distributed.elastic.multiprocessing.api", "torch.multiprocessing.spawn")


@contextlib.contextmanager
def _torch_failure_logs_quiet() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _TORCH_FAILURE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _exit_code(pidfd: int) -> int | None:
    """How the rank behind `pidfd` ended, as Popen's returncode (-N: killed by signal N), or None while
    it runs. WNOWAIT leaves the process to torch, which reaps it."""
    ended = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if ended is None or ended.si_pid == 0:
        return None
    return ended.si_status if ended.si_code == os.CLD_EXITED else -ended.si_status


def _rank_process(entry: Callable[..., Any], launcher_pid: int, returned: str, args: tuple) -> Any:
    """What every rank runs first. torch's spawn asks the kernel for SIGINT when the launcher dies;
    with SIGINT's default action that ends the rank even inside a collective. A launcher gone before
    that request was made is seen here. The rank's variables are set after torch was imported, too
    late for its thread count: OMP_NUM_THREADS is applied here. The file `returned` tells the launcher
    that this rank's function returned: once all have, torch is asked for the results."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _CALLERS_SIGNALS)
    if os.getppid() != launcher_pid:
        os._exit(1)
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    result = entry(*args)
    Path(returned).touch()
    return result


class LocalRanks:
    """The rank processes of this node while they run; leaving the `with` block kills what is left."""

    def __init__(self, entry: Callable[..., Any], args: tuple, rendezvous: Rendezvous,
                 extra_env: Sequence[Mapping[str, str]]) -> None:
        """Run `entry(*args)` (a module-level function: it is pickled by name) in each local rank, with
        torchrun's variables plus `extra_env[i]` for local rank i (CUDA_VISIBLE_DEVICES, ...)."""
        self.logs = tempfile.TemporaryDirectory(prefix="digitslite-ranks-")
        local_ranks = range(rendezvous.ranks_per_node)
        envs = {local: {**rendezvous.environment(local).variables(), **extra_env[local]}
                for local in local_ranks}
        arguments = {local: (entry, os.getpid(), str(self._returned(local)), args) for local in local_ranks}
        callers = {sig: signal.getsignal(sig) for sig in _CALLERS_SIGNALS}
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _CALLERS_SIGNALS)
        self.pidfds: dict[int, int] = {}
        try:
            self.context = start_processes("rank", _rank_process, arguments, envs,
                                           DefaultLogsSpecs(log_dir=self.logs.name))
        except BaseException:
            self.logs.cleanup()
            raise
        finally:
            for sig, handler in callers.items():
                if signal.getsignal(sig) is not handler:     # torch replaces them in the main thread only
                    signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        try:
            for local, pid in self.context.pids().items():
                self.pidfds[local] = os.pidfd_open(pid)
        except BaseException:
            self.kill()
            raise

    def __enter__(self) -> "LocalRanks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pids(self) -> list[int]:
        return list(self.context.pids().values())

    def _returned(self, local: int) -> Path:
        return Path(self.logs.name, f"returned-{local}")

    def _first_end(self, timeout_s: float) -> ProcessFailure | None:
        """A rank that has ended, waiting up to `timeout_s` for one. Before every rank's function has
        returned, an end is a failure: torch lets a rank leave only once it has collected all the
        results. Until then only this class looks at the ranks' ends (torch reaps them when asked for
        the results), so the first to end is seen here, with its exit code."""
        readable, _, _ = select.select(list(self.pidfds.values()), [], [], timeout_s)
        for local, pidfd in self.pidfds.items():
            code = _exit_code(pidfd) if pidfd in readable else None
            if code is not None:
                pid = self.context.pids()[local]
                return ProcessFailure(local, pid, code, self.context.error_files[local])
        return None

    def wait(self, should_stop: Callable[[], bool] | None = None,
             watch: Callable[[], None] | None = None) -> list[Any] | None:
        """Until every rank has ended; what each local rank's `entry` returned. `watch` runs every
        WATCH_INTERVAL_S; when `should_stop` turns true each rank gets SIGTERM (they stop together
        at the end of an iteration). Raises RanksInterrupted, with every rank killed, when one fails.

        None when the SIGTERM of a stop reached a rank still starting, before it could handle it (or
        a Ctrl-C at the terminal reached it with the launcher): it died of it, and the others were
        killed. No rank can train before all have started, so that run made no progress."""
        stop_sent, failure = False, None
        with _torch_failure_logs_quiet():
            while failure is None and not all(self._returned(local).exists() for local in self.pidfds):
                if watch is not None:
                    watch()
                if not stop_sent and should_stop is not None and should_stop():
                    self.signal(signal.SIGTERM)
                    stop_sent = True
                failure = self._first_end(WATCH_INTERVAL_S)
            if failure is not None:     # no grace: the others' work is lost either way, and a rank blocked
                self._kill_groups()     # in a collective with the failed one would not end by itself
            result = self.context.wait(-1, WATCH_INTERVAL_S)    # collects the results, or the failure
            self.kill()     # the data loader workers of ranks that ended
        if failure is None and not result.is_failed():
            return [result.return_values[local] for local in range(len(result.return_values))]
        if failure is None:     # one killed while torch collected the results: torch saw it
            ((_, failure),) = result.failures.items()
        if stop_sent and failure.exitcode in (-signal.SIGTERM, -signal.SIGINT):
            return None
        recorded = failure.error_file_data["message"]    # torch's record of a raised exception, or "<NONE>"
        raised = recorded["message"] if isinstance(recorded, dict) else None
        traceback = recorded.get("extraInfo", {}).get("py_callstack") if isinstance(recorded, dict) else None
        raise RanksInterrupted(f"local rank {failure.local_rank} (pid {failure.pid}) "
                               f"{describe_exit(failure.exitcode)}; the other ranks were stopped",
                               failure.local_rank, failure.pid, failure.exitcode, raised, traceback)

    def signal(self, sig: signal.Signals) -> None:
        """`sig` to each rank's main process only (its data loader workers must not get it)."""
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _kill_groups(self) -> None:
        """SIGKILL every rank's process group: the rank, and its data loader workers even when the rank
        itself has ended (a group id stays taken while a member lives)."""
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill every rank's process group, then let torch reap the ranks and remove its logs."""
        self._kill_groups()
        with _torch_failure_logs_quiet():
            self.context.close(signal.SIGKILL)
        while self.pidfds:
            os.close(self.pidfds.popitem()[1])
        self.logs.cleanup()
