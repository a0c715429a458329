"""The names of what digitslite keeps on disk: a job folder's files and a dataset folder's.

The engine writes metrics and snapshots into a job folder, the store publishes one, the server
serves it and the worker fills it, so the names sit on the lowest floor, beside fileio, where every
package can read them. This module only names paths; it opens nothing (jobs.folder reads and writes
a job's definition and state, datasets.reader opens a dataset's LMDBs).
"""
import re
from pathlib import Path

# ---- a job folder: every kind
SPEC_FILE = "job.json"              # the job's definition, fixed at creation
STATE_FILE = "state.json"           # its lifecycle, written by the holder of the worker lock
LOCK_FILE = "worker.lock"
LOG_FILE = "log.txt"
ABORT_MARKER = "abort.requested"    # present while an abort is asked for (survives a server restart)
INPUTS_DIR = "inputs"               # uploaded files; the job's parameters name them relative to it
UPLOAD_DIR = "upload"               # an uploaded archive, under its own name, that the job unpacks to inputs/

# ---- a job folder: what its kind leaves there
METRICS_FILE = "metrics.jsonl"      # a training's records, one JSON object per line
RANKS_FILE = "ranks.json"           # this node's training ranks and how their run ended
PIPELINE_FILE = "pipeline.json"     # a pipelined training's stages and its measured bubble
NETWORK_FILE = "network.prototxt"   # the all-in-one train/val/deploy network
TRAIN_VAL_FILE = "train_val.prototxt"   # the network bound to the dataset's LMDBs
DEPLOY_FILE = "deploy.prototxt"
SOLVER_FILE = "solver.prototxt"
SNAPSHOT_PREFIX = "snapshot"        # snapshot_iter_N.caffemodel / .resume.json / .solverstate
PRETRAINED_WEIGHTS = "weights.caffemodel"
ENTRY_DIR = "entry"                 # an imported store entry or a surgery result, kept whole
OUTPUTS_DIR = "outputs"             # an inference job's class maps and overlays
RESULTS_FILE = "results.json"       # an inference job's list of outputs and scores
DATASET_DIR = "dataset"             # a dataset job's dataset folder
CHECK_REPORT_FILE = "check-report.json"  # a dataset job's validation report when its check failed

# ---- a dataset folder (DIGITS' layout); a model or pretrained job keeps a copy of DATASET_INFO_FILE
DATASET_INFO_FILE = "dataset.json"  # classes, palette, counts, image sizes
MEAN_FILE = "mean.binaryproto"
INFOGAIN_FILE = "infogain.binaryproto"  # a colorization dataset's InfogainLoss H (Lab bins only)
HISTOGRAM_FILE = "chroma_histogram.png"  # a colorization dataset's training chroma, as a picture
DB_STAGES = ("train", "val")
DB_PARTS = ("features", "labels", "chroma")  # images (or lightness); class maps (or ab bins); chroma planes

# ---- Caffe's snapshot names: the prefix is concatenated literally ("dir/" gives "dir/_iter_4...")
WEIGHTS_SUFFIX, SOLVERSTATE_SUFFIX, SIDECAR_SUFFIX = ".caffemodel", ".solverstate", ".resume.json"
SNAPSHOT_PATTERN = re.compile(r"^(?P<prefix>.+)_iter_(?P<iteration>\d+)\.caffemodel$")


def snapshot_stem(prefix: str | Path, iteration: int) -> str:
    """`<prefix>_iter_N`: each snapshot file is this plus one of the suffixes above."""
    return f"{prefix}_iter_{iteration}"


def snapshot_iteration(name: str) -> int | None:
    """N of a file named `<prefix>_iter_N.caffemodel`; None for any other name."""
    match = SNAPSHOT_PATTERN.match(name)
    return int(match["iteration"]) if match else None


def db_name(stage: str, part: str) -> str:
    """`<stage>_db/<part>`, relative to the dataset folder: one LMDB of a split."""
    return f"{stage}_db/{part}"


def _file(name: str) -> property:
    """A read-only attribute: the Path of `name` inside the folder."""
    return property(lambda self: self.path / name)


class DatasetFiles:
    """The paths of one dataset folder."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    info_file = _file(DATASET_INFO_FILE)
    mean_file = _file(MEAN_FILE)
    infogain_file = _file(INFOGAIN_FILE)
    histogram_file = _file(HISTOGRAM_FILE)

    def db(self, stage: str, part: str) -> Path:
        return self.path / db_name(stage, part)

    def split_dir(self, stage: str) -> Path:
        return self.db(stage, DB_PARTS[0]).parent


class JobFiles:
    """The paths of one job folder; jobs.folder.JobFolder adds reading and writing its state."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    spec_file = _file(SPEC_FILE)
    state_file = _file(STATE_FILE)
    lock_file = _file(LOCK_FILE)
    log_file = _file(LOG_FILE)
    abort_marker = _file(ABORT_MARKER)
    inputs_dir = _file(INPUTS_DIR)
    upload_dir = _file(UPLOAD_DIR)
    metrics_file = _file(METRICS_FILE)
    ranks_file = _file(RANKS_FILE)
    pipeline_file = _file(PIPELINE_FILE)
    network_file = _file(NETWORK_FILE)
    train_val_file = _file(TRAIN_VAL_FILE)
    deploy_file = _file(DEPLOY_FILE)
    solver_file = _file(SOLVER_FILE)
    pretrained_weights = _file(PRETRAINED_WEIGHTS)
    entry_dir = _file(ENTRY_DIR)
    outputs_dir = _file(OUTPUTS_DIR)
    results_file = _file(RESULTS_FILE)
    dataset_info_file = _file(DATASET_INFO_FILE)
    check_report = _file(CHECK_REPORT_FILE)

    @property
    def dataset(self) -> DatasetFiles:
        """A dataset job's dataset folder."""
        return DatasetFiles(self.path / DATASET_DIR)

    def input(self, name: str) -> Path:
        """An uploaded file, by the name the job's parameters give it."""
        return self.inputs_dir / name
