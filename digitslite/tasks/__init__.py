"""The tasks, each declared once in its own module; a new task adds its module to TASK_MODULES.

Torch-free and dependency-free, on the lowest floor, because every floor reads a task: dataset
creation its storage, the engine its metrics, the store its name, the pages its views.
"""
from digitslite.tasks import colorization, segmentation
from digitslite.tasks.base import Task

TASK_MODULES = (segmentation, colorization)
TASKS: dict[str, Task] = {module.TASK.name: module.TASK for module in TASK_MODULES}
DEFAULT_TASK = segmentation.TASK  # what jobs made before tasks existed are


def task_of(params: dict) -> Task:
    """The task a dataset or model job's parameters, or a dataset.json, name (the default for older
    jobs and datasets)."""
    name = params.get("task", DEFAULT_TASK.name)
    if name not in TASKS:
        raise ValueError(f"no task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["DEFAULT_TASK", "TASKS", "Task", "task_of"]
