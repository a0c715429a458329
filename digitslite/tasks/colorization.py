"""Colorization: the colours of a photo from its lightness (Zhang et al. 2016 over ab bins, or a
regression from hypercolumns)."""
from digitslite.tasks.base import DatasetFields, Task

TASK = Task(
    name="colorization", title="Colorization: colour photos",
    dataset_format="digitslite-colorization/1",
    features="the lightness plane (L or Y), as a one-channel PNG",
    labels="Lab only: the ab bin of every pixel, as a 16-bit PNG; chroma: the two chroma planes",
    databases=("features", "labels", "chroma"),
    metrics=("ab_auc", "ab_error", "psnr", "colourfulness", "truth_colourfulness"),
    store_task="colorization",
    dataset_fields=DatasetFields(
        folders=("images", "val_images"),
        options=("val_percent", "space", "bins", "resize", "width", "height", "seed")),
    options="digitslite.datasets.colorize.options:ColorizeOptions",
    check="digitslite.datasets.colorize.create:check_colorize",
    create="digitslite.datasets.colorize.create:create_colorize",
    report_text="digitslite.datasets.colorize.report_text:format_colorize_report",
    summary_text="digitslite.datasets.colorize.report_text:format_colorize_summary",
    demo="digitslite.datasets.colorize.demo:write_colour_demo",
    probe="digitslite.engine.colorization.probe:colorization_probe",
    inference="digitslite.jobs.runners.colorize_inference:colourise_images",
    request_fields="digitslite.server.schemas.colorization:ColorizationFields",
    cli_inference="digitslite.cli._colourise:colourise_files",
    pages="digitslite.server.pages.colorization",
    model_view="models/_colorization.html",
    dataset_view="datasets/_colorization.html",
    inference_view="inference/_colorization.html",
    inference_script="js/colour-viewer.js",
    record_parts=("image", "colour"),
)
