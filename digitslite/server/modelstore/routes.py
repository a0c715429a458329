"""The model store in the JSON API: list the stores, import an entry or convolutionalize a classifier
(both as pretrained jobs, answered at once), publish a model job into a store folder."""
from flask import Blueprint, jsonify

from digitslite.modelstore.listing import list_stores
from digitslite.modelstore.locations import store_locations
from digitslite.server.auth import current_identity
from digitslite.server.create_common import COMMON_FIELDS, CreateContext, request_fields
from digitslite.server.create_pretrained import submitted
from digitslite.server.fields import Fields
from digitslite.server.modelstore.plans import SURGERY_FIELDS, plan_convolutionalize, plan_store_import
from digitslite.server.modelstore.publishing import publish_model
from digitslite.server.services import services

store_api = Blueprint("store_api", __name__)


def _context() -> CreateContext:
    return CreateContext(current_identity(), services().config)


@store_api.get("/store/models")
def list_store_models():
    """Every store's models; a store that cannot be read is listed with its error (short timeouts)."""
    return jsonify({"stores": [listing.to_dict() for listing in list_stores(store_locations())]})


@store_api.post("/store/import")
def import_store_model():
    return submitted(plan_store_import(request_fields(), _context()))


@store_api.post("/pretrained/<job_id>/convolutionalize")
def convolutionalize_pretrained(job_id: str):
    fields = request_fields()
    known = (*COMMON_FIELDS, *SURGERY_FIELDS)
    fields.reject_unknown(known)
    values = {name: fields.raw(name) for name in known if fields.raw(name) is not None}
    return submitted(plan_convolutionalize(Fields({**values, "classifier": job_id}), _context()))


@store_api.post("/models/<job_id>/publish")
def publish(job_id: str):
    entry, info = publish_model(job_id, request_fields())
    return jsonify({"store_dir": str(entry.parent), "name": entry.name, "info": info.to_dict()}), 201
