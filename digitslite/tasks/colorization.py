"""Colorization: the colours of a photo from its lightness (Zhang et al. 2016; hypercolumns)."""
from digitslite.tasks.base import Task

TASK = Task(
    name="colorization", title="Colorization",
    dataset_format="digitslite-colorization/1",
    features="the lightness plane (L or Y), as a one-channel PNG",
    labels="Lab only: the ab bin of every pixel, as a 16-bit PNG (chroma: the two chroma planes)",
    databases=("features", "labels", "chroma"),
    metrics=("ab_auc", "ab_error", "psnr", "colourfulness", "truth_colourfulness"),
    store_task="colorization",
    inference_view="inference/_colorization.html",
)
