"""Semantic segmentation: a class for every pixel (FCN)."""
from digitslite.tasks.base import DatasetFields, Task

TASK = Task(
    name="segmentation", title="Segmentation: images and label maps",
    dataset_format="digitslite-segmentation/1",
    features="the RGB image (PNG or JPEG encoded, or raw BGR)",
    labels="the class index of every pixel, as a one-channel PNG",
    databases=("features", "labels"),
    metrics=("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu", "per_class_iu"),
    store_task="semantic-segmentation",
    dataset_fields=DatasetFields(
        folders=("images", "labels", "val_images", "val_labels"), files=("colormap", "classes"),
        lists=("train_list", "val_list"), required=("images", "labels"),
        options=("val_percent", "label_mode", "nearest", "ignore_label", "encoding", "resize", "width",
                 "height", "seed", "allow_empty_classes")),
    options="digitslite.datasets.options:DatasetOptions",
    check="digitslite.datasets.create:check_dataset",
    create="digitslite.datasets.create:create_dataset",
    report_text="digitslite.datasets.report_text:format_report",
    summary_text="digitslite.datasets.report_text:format_summary",
    demo="digitslite.datasets.demo:write_demo",
    probe="digitslite.engine.validation:segmentation_probe",
    inference="digitslite.jobs.runners.inference:segment",
    request_fields="digitslite.server.schemas.segmentation:SegmentationFields",
    cli_inference=None,
    pages="digitslite.server.pages.segmentation",
    model_view="models/_segmentation.html",
    dataset_view="datasets/_segmentation.html",
    inference_view="inference/_segmentation.html",
    inference_script="js/overlay.js",
    record_parts=("image", "label", "classes"),
)
