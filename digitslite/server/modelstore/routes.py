"""The model store in the JSON API: list the stores, import an entry or convolutionalize a classifier
(both as pretrained jobs, answered at once), publish a model job into a store folder."""
from flask import Blueprint, jsonify
from werkzeug.utils import secure_filename

from digitslite.jobs.kinds.pretrained import WEIGHTS_UPLOAD_DIR
from digitslite.layout import INPUTS_DIR
from digitslite.modelstore.listing import list_stores
from digitslite.modelstore.locations import store_locations
from digitslite.server.auth import current_identity
from digitslite.server.create_common import (
    CreateContext,
    request_values,
    upload_folder,
    uploaded_files,
)
from digitslite.server.create_pretrained import submitted
from digitslite.server.modelstore.plans import plan_convolutionalize, plan_store_import
from digitslite.server.modelstore.publishing import publish_model
from digitslite.server.schemas.openapi import operation
from digitslite.server.schemas.requests import ConvolutionalizeRequest, PublishRequest, StoreImportRequest
from digitslite.server.schemas.responses import Created, Published, StoreList
from digitslite.server.services import services

store_api = Blueprint("store_api", __name__)


def _context() -> CreateContext:
    return CreateContext(current_identity(), services().config)


@store_api.get("/store/models")
@operation({200: StoreList}, errors=(401,))
def list_store_models():
    """The models of every store (the embedded one and DIGITSLITE_STORE_URLS)

    A store that cannot be read is listed with its error (short timeouts).
    """
    return jsonify({"stores": [listing.to_dict() for listing in list_stores(store_locations())]})


@store_api.post("/store/import")
@operation({201: Created}, errors=(401, 403, 413, 422), body=StoreImportRequest, files=(WEIGHTS_UPLOAD_DIR,))
def import_store_model():
    """Import a store entry as a pretrained job (every file's checksum verified; progress, log in the job)

    An uploaded `weights` file stands in for weights this machine cannot download; it is checked
    against the entry's checksum like a download.
    """
    uploads = uploaded_files(WEIGHTS_UPLOAD_DIR)
    if not uploads:
        return submitted(plan_store_import(request_values(), _context()))
    config = services().config
    with upload_folder(config) as scratch:
        folder = scratch / INPUTS_DIR / WEIGHTS_UPLOAD_DIR
        folder.mkdir(parents=True)
        uploads[0].save(folder / (secure_filename(uploads[0].filename) or "weights.caffemodel"))
        ctx = CreateContext(current_identity(), config, scratch / INPUTS_DIR, move_inputs=True)
        return submitted(plan_store_import(request_values(), ctx))


@store_api.post("/pretrained/<job_id>/convolutionalize")
@operation({201: Created}, errors=(401, 422), body=ConvolutionalizeRequest)
def convolutionalize_pretrained(job_id: str):
    """A new pretrained job with FCN initial weights made by net surgery from this pretrained classifier

    For example bvlc_alexnet into fcn_alexnet.
    """
    return submitted(plan_convolutionalize({**request_values(), "classifier": job_id}, _context()))


@store_api.post("/models/<job_id>/publish")
@operation({201: Published}, errors=(401, 403, 422), body=PublishRequest)
def publish(job_id: str):
    """Publish a snapshot of this model job as an entry of a store folder on the server"""
    entry, info = publish_model(job_id, PublishRequest.parse(request_values()))
    return jsonify({"store_dir": str(entry.parent), "name": entry.name, "info": info.to_dict()}), 201
