"""Which request planner makes each kind of job, and cloning: the old request, changed, planned again."""
from collections.abc import Callable, Mapping
from typing import Any

from digitslite.jobs.folder import JobFolder
from digitslite.jobs.model import JobSpec
from digitslite.jobs.scheduler import Prepare
from digitslite.server.auth import Identity
from digitslite.server.create_common import CreateContext
from digitslite.server.create_dataset import plan_dataset
from digitslite.server.create_inference import plan_inference
from digitslite.server.create_model import plan_model
from digitslite.server.create_pretrained import plan_pretrained
from digitslite.server.errors import ApiError
from digitslite.server.services import services

Planner = Callable[[Mapping[str, Any], CreateContext], list[tuple[JobSpec, Prepare | None]]]
PLANNERS: dict[str, Planner] = {"dataset": plan_dataset, "model": plan_model, "inference": plan_inference,
                                 "pretrained": plan_pretrained}


def clone_job(folder: JobFolder, overrides: dict[str, Any], identity: Identity) -> list[JobFolder]:
    """Queue new jobs made from `folder`'s request with `overrides` applied; the clone is the caller's."""
    spec = folder.spec()
    if spec.kind not in PLANNERS:
        raise ApiError(422, f"{spec.kind} jobs cannot be cloned")
    common = {"name": spec.name, "group": spec.group, "notes": spec.notes, "priority": spec.priority}
    request = {**common, **spec.params.get("request", {}), **overrides}
    inputs = folder.inputs_dir if folder.inputs_dir.is_dir() else None
    ctx = CreateContext(identity, services().config, inputs, move_inputs=False)
    return services().scheduler.submit(PLANNERS[spec.kind](request, ctx))
