"""Dataset creation: folders of images and labels in, a DIGITS-layout LMDB segmentation dataset out.

The job server and the command line use `check_dataset` (the dry run) and `create_dataset`;
colorization datasets (colour photos alone) are `digitslite.datasets.colorize`. This package never
imports torch; reading datasets for training lives in digitslite.engine.data.
"""
from digitslite.datasets.create import (
    DatasetAbortedError,
    DatasetInvalidError,
    DatasetSummary,
    check_dataset,
    create_dataset,
    remove_partials,
)
from digitslite.datasets.options import DatasetOptions
from digitslite.datasets.report import ValidationReport

__all__ = ["DatasetAbortedError", "DatasetInvalidError", "DatasetOptions", "DatasetSummary",
           "ValidationReport", "check_dataset", "create_dataset",
           "remove_partials"]
