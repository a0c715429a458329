"""Publishing a model job's snapshot as an entry of a store folder on the server.

The folder must lie inside the data roots, like every server path a request names; it may be new,
in a folder that does. The entry is written by digitslite.store.publish (whole or not at all), so a
`digitslite store serve` of that folder, or a server listing it in DIGITSLITE_STORE_URLS, offers it.
"""
import os
from pathlib import Path

from digitslite.jobs.runners.names import DATASET_DIR, DATASET_INFO_FILE
from digitslite.server.auth import require_owner
from digitslite.server.create_common import job_of_kind
from digitslite.server.errors import ApiError
from digitslite.server.paths import resolve_data_path
from digitslite.server.schemas.requests import PublishRequest
from digitslite.server.services import services
from digitslite.store.format import ModelInfo, is_plain_name
from digitslite.store.publish import publish_job


def _store_folder(raw: str, roots: tuple[Path, ...]) -> Path:
    """An existing folder inside the data roots, or a new one (plainly named) in such a folder."""
    try:
        return resolve_data_path(raw, roots, "store_dir")
    except ApiError as refused:
        if refused.status != 422:
            raise
        path = Path(raw)
        parent = resolve_data_path(str(path.parent), roots, "store_dir")
        if not is_plain_name(path.name) or os.path.lexists(parent / path.name):
            raise
        return parent / path.name


def _dataset(model_id: str) -> Path:
    """The dataset folder the model trained on; its dataset.json copy once that job is deleted."""
    model = services().scheduler.folder(model_id)
    dataset = services().scheduler.folder(model.spec().params["dataset"]).path / DATASET_DIR
    return dataset if dataset.is_dir() else model.path / DATASET_INFO_FILE


def publish_model(job_id: str, body: PublishRequest) -> tuple[Path, ModelInfo]:
    """Publish model job `job_id` as entry `name` of `store_dir`; returns the entry folder and its info."""
    model = job_of_kind(job_id, "model", "job_id")
    require_owner(model.spec().owner, "publish")
    store = _store_folder(body.store_dir, services().config.data_roots)
    name = body.name
    if not is_plain_name(name):
        raise ApiError(422, f"name: {name!r} cannot name a store entry; use letters, digits, '.', '_', '+' "
                            "or '-'", "name")
    info = publish_job(model.path, store, name, dataset=_dataset(job_id),
                       iteration=body.snapshot, title=body.title, note=body.note, license=body.license,
                       source=body.source)
    return store / name, info
