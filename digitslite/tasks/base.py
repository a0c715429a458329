"""What declares a task (what a dataset's labels mean and what a model learns to predict): one record
that dataset creation, training, the store and the pages read."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str                  # a dataset job's and a model job's params["task"], dataset.json's "task"
    title: str                 # how pages name it
    dataset_format: str        # dataset.json's "format" for its datasets
    features: str              # what a dataset's features records hold
    labels: str                # what a dataset's labels records hold
    databases: tuple[str, ...]  # the LMDBs of each split (layout.DB_PARTS) its datasets have
    metrics: tuple[str, ...]   # what a training records for each validation, beside the loss
    store_task: str            # a store entry's "task" in info.json (DIGITS' vocabulary)
    inference_view: str        # the template that shows an inference job's results
