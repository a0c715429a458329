"""Each kind's request planner (named by its record in jobs.kinds), and cloning: the old request,
changed, planned again."""
from collections.abc import Callable, Mapping
from typing import Any

from digitslite.jobs.folder import JobFolder
from digitslite.jobs.job import JobSpec
from digitslite.jobs.kinds import KINDS, load
from digitslite.jobs.scheduler import Prepare
from digitslite.server.auth import Identity
from digitslite.server.create_common import CreateContext
from digitslite.server.errors import ApiError
from digitslite.server.services import services

Planner = Callable[[Mapping[str, Any], CreateContext], list[tuple[JobSpec, Prepare | None]]]
PLANNERS: dict[str, Planner] = {kind.name: load(kind.planner) for kind in KINDS.values()}


def clone_job(folder: JobFolder, overrides: dict[str, Any], identity: Identity) -> list[JobFolder]:
    """Queue new jobs made from `folder`'s request with `overrides` applied; the clone is the caller's."""
    spec = folder.spec()
    if spec.kind not in PLANNERS:
        raise ApiError(422, f"{spec.kind} jobs cannot be cloned")
    common = {"name": spec.name, "group": spec.group, "notes": spec.notes, "priority": spec.priority}
    request = {**common, **spec.params.get("request", {}), **overrides}
    inputs = folder.inputs_dir if folder.inputs_dir.is_dir() else None
    # An uploaded archive the job has not unpacked yet: the clone gets it to unpack itself.
    archive = None if inputs is not None or not folder.upload_dir.is_dir() else \
        next(iter(sorted(folder.upload_dir.iterdir())), None)
    ctx = CreateContext(identity, services().config, inputs, move_inputs=False, archive=archive)
    return services().scheduler.submit(PLANNERS[spec.kind](request, ctx))
