"""The store's two pretrained-job requests: import a store entry, convolutionalize a classifier.

Both are planned from request fields alone, so that a clone plans them again from the saved
request; downloads, checksums and net surgery run in the job's worker (runners/pretrained.py). A
surgery from a classifier already imported is first checked from the layer shapes alone.
In an import request `name` is the store entry, as in `digitslite store import STORE NAME`; the
job's own name is `job_name`.
"""
from collections.abc import Mapping
from typing import Any

from digitslite.errors import UserError
from digitslite.jobs.job import RESUMABLE, JobSpec, Status
from digitslite.jobs.kinds.pretrained import WEIGHTS_UPLOAD_DIR
from digitslite.modelstore.client import is_http
from digitslite.modelstore.convolutionalize import check_convolutionalize
from digitslite.modelstore.format import is_plain_name
from digitslite.modelstore.locations import STORE_URLS_VARIABLE, store_locations
from digitslite.networks import list_networks
from digitslite.server.create_common import COMMON_FIELDS, CreateContext, copy_inputs, job_of_kind, new_spec
from digitslite.server.errors import ApiError
from digitslite.server.paths import resolve_data_path
from digitslite.server.schemas.requests import ConvolutionalizeRequest, StoreImportRequest


def store_location(raw: str, ctx: CreateContext) -> str:
    """A store this server may read: one it lists (the embedded store and DIGITSLITE_STORE_URLS), or
    a store folder inside the data roots. No other URL: a request must not make the server fetch
    from addresses of its choosing."""
    listed = {location.rstrip("/"): location for location in store_locations()}
    if raw.rstrip("/") in listed:
        return listed[raw.rstrip("/")]
    if is_http(raw):
        known = ", ".join(listed.values())
        raise ApiError(422, f"store: {raw} is not one of this server's stores ({known}); add it to "
                            f"{STORE_URLS_VARIABLE} where the server starts, or give a store folder "
                            "inside the data roots", "store")
    return str(resolve_data_path(raw, ctx.config.data_roots, "store"))


def _weights_upload(ctx: CreateContext) -> str | None:
    """The uploaded copy of the weights (inputs/weights/NAME, of this request or of the cloned job)."""
    folder = None if ctx.inputs is None else ctx.inputs / WEIGHTS_UPLOAD_DIR
    uploaded = sorted(folder.iterdir()) if folder is not None and folder.is_dir() else []
    return f"{WEIGHTS_UPLOAD_DIR}/{uploaded[0].name}" if uploaded else None


def plan_store_import(values: Mapping[str, Any], ctx: CreateContext) -> list[tuple[JobSpec, Any]]:
    """A pretrained job importing entry `name` of `store`; `weights_file` (a server path inside the
    data roots) or an uploaded `weights` file stands in for weights the machine cannot download, and
    is verified against the entry's checksum all the same."""
    body = StoreImportRequest.parse(values)
    store = store_location(body.store, ctx)
    entry = body.name
    if not is_plain_name(entry):
        raise ApiError(422, f"name: {entry!r} is not a model name of a store (GET /api/v1/store/models "
                            "lists them)", "name")
    weights_file = body.weights_file
    if weights_file is not None:
        weights_file = str(resolve_data_path(weights_file, ctx.config.data_roots, "weights_file",
                                             folder=False))
    weights_upload = _weights_upload(ctx)
    if weights_upload is not None and weights_file is not None:
        raise ApiError(422, "weights_file: give the copy of the weights as an upload or as a server path, "
                            "not both", "weights_file")
    params = {"request": body.given(exclude=("group", "notes", "priority")), "source": "store",
              "store": store, "entry": entry, "group_upscores": body.group_upscores,
              "weights_file": weights_file, "weights_upload": weights_upload}
    spec = new_spec("pretrained", body, ctx, params, default_name=entry, name=body.job_name or entry)
    return [(spec, copy_inputs(ctx) if weights_upload else None)]


def plan_convolutionalize(values: Mapping[str, Any], ctx: CreateContext) -> list[tuple[JobSpec, None]]:
    """A pretrained job holding initial weights of the standard FCN `network` for `num_classes`
    classes, made from the classifier in pretrained job `classifier` (which may still be importing)."""
    body = ConvolutionalizeRequest.parse(values)
    classifier_id = body.classifier
    classifier = job_of_kind(classifier_id, "pretrained", "classifier")
    status = classifier.state().status
    if status in RESUMABLE:
        raise ApiError(422, f"classifier: pretrained job {classifier_id} is {status}; resume or recreate it "
                            "first", "classifier")
    names = [network.name for network in list_networks()]
    if body.network not in names:
        raise ApiError(422, f"network: {body.network!r} is not one of {', '.join(names)}", "network")
    if status == Status.DONE:  # its files are there: a misfit is refused now, not by a failed job
        try:
            check_convolutionalize(classifier.deploy_file, body.network, body.num_classes)
        except UserError as exc:
            raise ApiError(422, f"network: {exc}", "network") from None
    params = {"request": body.given(exclude=COMMON_FIELDS), "source": "convolutionalize",
              "classifier": classifier_id, "network": body.network, "num_classes": body.num_classes}
    spec = new_spec("pretrained", body, ctx, params,
                    default_name=f"{body.network} from {classifier.spec().name}",
                    depends_on=[classifier_id], waits_for=[classifier_id])
    return [(spec, None)]
