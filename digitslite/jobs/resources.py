"""Which queued jobs may start now: GPUs are exclusive, jobs without a GPU take a CPU slot.

The queue is walked in scheduling order (priority, then first come first served). A job that does
not fit holds back what it is waiting for from the jobs behind it: the free GPUs it asked for (by
id, or as many free ones as its count needs) or the free CPU slots (a pipelined job takes one per
stage). So a job asking for two GPUs is not starved by a stream of one-GPU jobs behind it, while
jobs needing something else still start.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    job_id: str
    gpus: int | list[str]
    cpu_slots: int = 1       # taken when the job runs without GPUs


@dataclass(frozen=True)
class Grant:
    job_id: str
    gpus: list[str]  # empty: the job runs on a CPU slot


def unsatisfiable(request: Request, all_gpus: list[str], cpu_slots: int | None = None) -> str | None:
    """Why `request` can never be met on this machine, or None when it can."""
    if not request.gpus and cpu_slots is not None and request.cpu_slots > cpu_slots:
        return f"{request.cpu_slots} CPU slots were asked for but this server has {cpu_slots}"
    if isinstance(request.gpus, list):
        missing = [gpu for gpu in request.gpus if gpu not in all_gpus]
        if missing:
            return f"GPU {', '.join(missing)} does not exist here (GPUs: {', '.join(all_gpus) or 'none'})"
    elif request.gpus > len(all_gpus):
        return f"{request.gpus} GPUs were asked for but this machine has {len(all_gpus)}"
    return None


def plan(requests: list[Request], all_gpus: list[str], busy_gpus: set[str], cpu_slots: int,
         busy_cpu_slots: int) -> list[Grant]:
    """The jobs of `requests` (in scheduling order) that start now, with the GPUs each gets."""
    free_gpus = [gpu for gpu in all_gpus if gpu not in busy_gpus]
    free_cpu = cpu_slots - busy_cpu_slots
    grants = []
    for request in requests:
        if not request.gpus:
            if free_cpu >= request.cpu_slots:
                grants.append(Grant(request.job_id, []))
            free_cpu -= request.cpu_slots    # a job that does not fit yet holds the free slots back
            continue
        if isinstance(request.gpus, list):
            wanted = [gpu for gpu in request.gpus if gpu in free_gpus]
            fits = len(wanted) == len(request.gpus)
        else:
            wanted = free_gpus[:request.gpus]
            fits = len(wanted) == request.gpus
        free_gpus = [gpu for gpu in free_gpus if gpu not in wanted]
        if fits:
            grants.append(Grant(request.job_id, wanted))
    return grants
