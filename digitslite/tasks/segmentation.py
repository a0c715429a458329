"""Semantic segmentation: a class for every pixel (FCN)."""
from digitslite.tasks.base import Task

TASK = Task(
    name="segmentation", title="Semantic segmentation",
    dataset_format="digitslite-segmentation/1",
    features="the RGB image (PNG or JPEG encoded, or raw BGR)",
    labels="the class index of every pixel, as a one-channel PNG",
    databases=("features", "labels"),
    metrics=("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu", "per_class_iu"),
    store_task="semantic-segmentation",
    inference_view="inference/_segmentation.html",
)
