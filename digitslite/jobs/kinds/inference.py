"""Inference jobs: a model's snapshot (or a pretrained job) run over images; which images it takes."""
from pathlib import Path

from digitslite.errors import UserError
from digitslite.jobs.kinds.base import JobKind

KIND = JobKind(name="inference", title="Inference", tab="inference", tab_title="Inference",
               runner="digitslite.jobs.runners.inference",
               planner="digitslite.server.create_inference:plan_inference",
               api="digitslite.server.create_inference:inference_api", page="pages.inference",
               page_module="digitslite.server.pages.inference",
               request_schema="digitslite.server.schemas.requests:InferenceRequest")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")


def image_files(folder: Path) -> list[Path]:
    files = sorted(path for path in folder.rglob("*")
                   if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    if not files:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to run the model on")
    return files
