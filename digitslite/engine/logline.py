"""A training job's log, one line per metrics record as Caffe's log reads: per display interval
the iteration, its loss and learning rate (then the other train outputs and the speed), per test
pass its metrics. The metrics file holds the same records in full; this is the text a person reads.
"""
from typing import Any

TRAIN_FIRST = ("loss", "lr")  # Caffe's order: "Iteration N, loss = x", then "lr = y"
SPEED = "images_per_s"


def _value(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def log_line(record: dict[str, Any]) -> str:
    """The log line of one metrics record (scalar fields only: no per-class lists or matrices)."""
    scalars = {name: value for name, value in record.items()
               if name not in ("iteration", "phase") and _value(value)}
    head = f"Iteration {record['iteration']}"
    if record["phase"] != "train":
        shown = ", ".join(f"{name} = {value:.4g}" for name, value in scalars.items())
        return f"{head}, Testing net ({record['phase']}): {shown}"
    speed = scalars.pop(SPEED, None)
    ordered = [name for name in TRAIN_FIRST if name in scalars] + [
        name for name in scalars if name not in TRAIN_FIRST]
    shown = ", ".join(f"{name} = {scalars[name]:.4g}" for name in ordered)
    return f"{head}, {shown}" + (f" ({speed:.3g} images/s)" if speed is not None else "")
