"""This node's rank processes, started and watched by torch's elastic process API, as torchrun does.

`torch.distributed.elastic.multiprocessing.start_processes` spawns one process per local rank
running a function, gives each its variables, returns what each function returned, records the
exception a rank ended with (its error file) and, when one rank fails, stops the others (SIGTERM,
then SIGKILL after its grace period). Ours, on top (docs/DESIGN-NOTES.md, "... ranks are started by
torch's elastic launcher"): each rank leads its own process group, so that a kill takes its data
loader workers and a Ctrl-C at the terminal reaches only the launcher, which turns it into a stop
request; a rank whose launcher is gone ends, even when it was SIGKILLed; a stop request reaches
each rank as SIGTERM; and the failure is reported as RanksInterrupted.
"""
import contextlib
import os
import signal
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, start_processes

from digitslite.engine.launch import RanksInterrupted, Rendezvous, describe_exit

WATCH_INTERVAL_S = 0.1        # how often should_stop, `watch` and the ranks are looked at
# start_processes() points these at a handler of its own (torchrun's agent stops on them); the
# launcher's caller keeps its meaning for them (a stop request): they are blocked while it runs (a
# signal then waits for the caller's handler, put back after it) and unblocked in each rank.
_CALLERS_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}


def _rank_process(entry: Callable[..., Any], launcher_pid: int, args: tuple) -> Any:
    """What every rank runs first. torch's spawn asks the kernel for SIGINT when the launcher dies;
    with SIGINT's default action that ends the rank even inside a collective. A launcher gone before
    that request was made is seen here. The rank's variables are set after torch was imported, too
    late for its thread count: OMP_NUM_THREADS is applied here."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _CALLERS_SIGNALS)
    if os.getppid() != launcher_pid:
        os._exit(1)
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    return entry(*args)


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
        arguments = dict.fromkeys(local_ranks, (entry, os.getpid(), args))
        callers = {sig: signal.getsignal(sig) for sig in _CALLERS_SIGNALS}
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _CALLERS_SIGNALS)
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

    def __enter__(self) -> "LocalRanks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pids(self) -> list[int]:
        return list(self.context.pids().values())

    def wait(self, should_stop: Callable[[], bool] | None = None,
             watch: Callable[[], None] | None = None) -> list[Any] | None:
        """Until every rank has ended; what each local rank's `entry` returned. `watch` runs every
        WATCH_INTERVAL_S; when `should_stop` turns true each rank gets SIGTERM (they stop together
        at the end of an iteration). Raises RanksInterrupted, with every rank killed, when one fails.

        None when the SIGTERM of a stop reached a rank still starting, before it could handle it (or
        a Ctrl-C at the terminal reached it with the launcher): it died of it, and the others were
        killed. No rank can train before all have started, so that run made no progress."""
        stop_sent, result = False, None
        while result is None:
            if watch is not None:
                watch()
            if not stop_sent and should_stop is not None and should_stop():
                self.signal(signal.SIGTERM)
                stop_sent = True
            result = self.context.wait(WATCH_INTERVAL_S, WATCH_INTERVAL_S)
        self.kill()     # the data loader workers of ranks that ended
        if not result.is_failed():
            return [result.return_values[local] for local in range(len(result.return_values))]
        ((local, failure),) = result.failures.items()
        if stop_sent and failure.exitcode in (-signal.SIGTERM, -signal.SIGINT):
            return None
        recorded = failure.error_file_data["message"]    # torch's record of a raised exception, or "<NONE>"
        raised = recorded["message"] if isinstance(recorded, dict) else None
        raise RanksInterrupted(f"local rank {local} (pid {failure.pid}) {describe_exit(failure.exitcode)}; "
                               "the other ranks were stopped", local, failure.pid, failure.exitcode, raised)

    def signal(self, sig: signal.Signals) -> None:
        """`sig` to each rank's main process only (its data loader workers must not get it)."""
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL every rank's process group (the rank, and its data loader workers even when the rank
        itself has ended: a group id stays taken while a member lives), then let torch reap the ranks
        and remove its logs."""
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.context.close(signal.SIGKILL)
        self.logs.cleanup()
