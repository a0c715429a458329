"""What declares a task (what a dataset's labels mean and what a model learns to predict): one record
that dataset creation, training, the store and the pages read.

A task's code lives on several floors (its dataset code in datasets/, its scoring in engine/, its
inference in the worker's runners, its pages in the server), so the record names each part by module
path ("module:name") and each floor loads only its own part with `part`: nothing here imports.
"""
import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetFields:
    """The fields a task's datasets are made from, by their API and form names (the CLI's flags are
    these with dashes): the request reads them, the form shows them, the other tasks refuse them."""

    folders: tuple[str, ...]         # server folders, or folders inside an uploaded archive
    files: tuple[str, ...] = ()      # server files, or files inside the archive
    lists: tuple[str, ...] = ()      # server lists of pairs that may stand in for the required folders
    required: tuple[str, ...] = ("images",)
    options: tuple[str, ...] = ()    # the rest: choices, numbers and flags

    @property
    def paths(self) -> tuple[str, ...]:
        return (*self.folders, *self.files)

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.paths, *self.lists, *self.options)


@dataclass(frozen=True)
class Task:
    name: str                  # a dataset job's and a model job's params["task"], dataset.json's "task"
    title: str                 # how pages name it
    dataset_format: str        # dataset.json's "format" for its datasets
    features: str              # what a dataset's features records hold
    labels: str                # what a dataset's labels records hold
    databases: tuple[str, ...]  # the LMDBs of each split (layout.DB_PARTS) its datasets may have
    metrics: tuple[str, ...]   # what a training records for each validation, beside the loss
    store_task: str            # a store entry's "task" in info.json
    dataset_fields: DatasetFields
    # Its parts, by "module:name", each loaded by the floor that owns it:
    options: str               # datasets: the options class a dataset job's params stand for
    check: str                 # datasets: (options, progress) -> report, the dry run
    create: str                # datasets: (options, out_dir, progress) -> summary, atomic
    report_text: str           # datasets: report -> the command line's text
    summary_text: str          # datasets: summary -> the command line's text
    demo: str                  # datasets: (out_dir, count, val_count, width, height, seed) -> summary
    probe: str                 # engine: (test net, dataset.json) -> what a test pass scores, or None
    inference: str             # worker: (ctx, predictor, dataset.json) -> an inference job's results
    # cli: `digitslite infer`'s own run for a model of this task (None: the command's report of its blobs)
    cli_inference: str | None
    request_fields: str        # server: the schema of the dataset request fields only this task reads
    pages: str                 # server: module with form_check, dataset_context, inference_context
    model_view: str            # the template of its parts of a model page: stats(), charts, panels()
    dataset_view: str          # the template that shows a dataset's summary
    inference_view: str        # the template that shows an inference job's results
    inference_script: str      # the static script of that view
    record_parts: tuple[str, ...]  # the pictures of a dataset record its page offers

    def part(self, field: str) -> Any:
        """The object one of the "module:name" fields names, imported now."""
        module, _, name = getattr(self, field).partition(":")
        loaded = importlib.import_module(module)
        return getattr(loaded, name) if name else loaded
