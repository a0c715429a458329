"""The store's two pretrained-job requests: import a store entry, convolutionalize a classifier.

Both are planned from request fields alone, so that a clone plans them again from the saved
request; downloads, checksums and net surgery run in the job's worker (runners/pretrained.py).
In an import request `name` is the store entry, as in `digitslite store import STORE NAME`; the
job's own name is `job_name`.
"""
from typing import Any

from digitslite.datasets.colormap import MAX_CLASSES
from digitslite.jobs.job import RESUMABLE, JobSpec
from digitslite.modelstore.client import is_http
from digitslite.modelstore.format import is_plain_name
from digitslite.modelstore.locations import STORE_URLS_VARIABLE, store_locations
from digitslite.networks import list_networks
from digitslite.server.create_common import COMMON_FIELDS, CreateContext, job_of_kind, new_spec
from digitslite.server.errors import ApiError
from digitslite.server.fields import Fields
from digitslite.server.paths import resolve_data_path

JOB_FIELDS = ("group", "notes", "priority")
IMPORT_FIELDS = ("store", "name", "group_upscores", "weights_file", "job_name")
SURGERY_FIELDS = ("num_classes", "network")  # beside "classifier", the job it starts from
DEFAULT_FCN = "fcn_alexnet"
DEFAULT_CLASSES = 21


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


def _saved_request(fields: Fields, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: fields.raw(name) for name in names if fields.raw(name) is not None}


def plan_store_import(fields: Fields, ctx: CreateContext) -> list[tuple[JobSpec, None]]:
    """A pretrained job importing entry `name` of `store`; `weights_file` (a server path inside the
    data roots) stands in for weights the machine cannot download, and is verified all the same."""
    fields.reject_unknown((*IMPORT_FIELDS, *JOB_FIELDS))
    store = store_location(fields.text("store", required=True), ctx)
    entry = fields.text("name", required=True, max_length=200)
    if not is_plain_name(entry):
        raise ApiError(422, f"name: {entry!r} is not a model name of a store (GET /api/v1/store/models "
                            "lists them)", "name")
    weights_file = fields.text("weights_file")
    if weights_file is not None:
        weights_file = str(resolve_data_path(weights_file, ctx.config.data_roots, "weights_file",
                                             folder=False))
    params = {"request": _saved_request(fields, IMPORT_FIELDS), "source": "store", "store": store,
              "entry": entry, "group_upscores": fields.boolean("group_upscores"),
              "weights_file": weights_file}
    job_fields = Fields({**_saved_request(fields, JOB_FIELDS), "name": fields.raw("job_name")})
    return [(new_spec("pretrained", job_fields, ctx, params, default_name=entry), None)]


def plan_convolutionalize(fields: Fields, ctx: CreateContext) -> list[tuple[JobSpec, None]]:
    """A pretrained job holding initial weights of the standard FCN `network` for `num_classes`
    classes, made from the classifier in pretrained job `classifier` (which may still be importing)."""
    fields.reject_unknown(("classifier", *SURGERY_FIELDS, *COMMON_FIELDS))
    classifier_id = fields.text("classifier", required=True)
    classifier = job_of_kind(classifier_id, "pretrained", "classifier")
    status = classifier.state().status
    if status in RESUMABLE:
        raise ApiError(422, f"classifier: pretrained job {classifier_id} is {status}; resume or recreate it "
                            "first", "classifier")
    network = fields.choice("network", [network.name for network in list_networks()], DEFAULT_FCN)
    num_classes = fields.integer("num_classes", DEFAULT_CLASSES, minimum=1, maximum=MAX_CLASSES)
    params = {"request": _saved_request(fields, ("classifier", *SURGERY_FIELDS)),
              "source": "convolutionalize", "classifier": classifier_id, "network": network,
              "num_classes": num_classes}
    spec = new_spec("pretrained", fields, ctx, params,
                    default_name=f"{network} from {classifier.spec().name}",
                    depends_on=[classifier_id], waits_for=[classifier_id])
    return [(spec, None)]
