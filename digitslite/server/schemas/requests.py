"""Every request the JSON API reads, declared once: the fields, their types, bounds and choices, and
the rules between fields. Validation (Body.parse) and the OpenAPI document both come from these.

Choices come from the tables of the code that acts on them (the engine's solver types and rate
policies, the datasets' label, encoding and resize modes, the job kinds and statuses), never from a
copy. What needs the server's state (does that job exist, is that path inside the data roots, has
this machine that many GPUs) is checked by the planners in digitslite.server.create_*.
"""
from typing import Literal, Self

from pydantic import ConfigDict, model_validator

from digitslite.caffe.partition import BALANCES
from digitslite.datasets.colormap import MAX_CLASSES
from digitslite.datasets.options import MAX_SIDE, RESIZE_MODES
from digitslite.engine.choices import AMP_MODES, PIPELINE_SCHEDULES, SOLVER_TYPES
from digitslite.engine.lr_policy import POLICIES, POLICY_FIELDS
from digitslite.jobs.index import MAX_PAGE, MAX_PER_PAGE
from digitslite.jobs.job import Status
from digitslite.jobs.kinds import KIND_NAMES
from digitslite.server.schemas.body import Body, Query, rule_broken
from digitslite.server.schemas.types import Flag, GpuIds, ServerPath, number, sweep, text, whole
from digitslite.tasks import DEFAULT_TASK, TASKS

Name = text(200)
Notes = text(10_000)
Path = ServerPath
JobId = text(100)
# The network sources of a model request; exactly one is given.
NETWORK_SOURCES = ("network", "network_prototxt", "network_job", "pretrained")
NO_AMP = "none"
Prototxt = text(5_000_000, "an all-in-one prototxt, {{num_classes}} for the class count")
# Caffe's SolverParameter holds these as int32 (random_seed as int64, which whole() already bounds).
INT32_MAX = 2**31 - 1
MAX_ITER_SIZE = 1024  # batches accumulated per step; FCN uses 20, a billion would never finish a step
MAX_EPOCHS = 1_000_000
StepValues = sweep(whole(1, INT32_MAX),
                   "iterations of the multistep drops: a list or a comma-separated string")
Search = text(200, "a substring of the id, name, group or notes")


class JobFields(Body):
    """What every job-creating request may give."""

    name: Name | None = None
    group: Name | None = None
    """jobs of one group are listed together (a sweep's jobs share one)"""
    notes: Notes | None = None
    priority: whole(-100, 100, "higher runs first") | None = None


class GpuFields(Body):
    gpus: whole(0, description="how many GPUs (any free ones); 0: a CPU slot") | None = None
    gpu_ids: GpuIds | None = None

    @model_validator(mode="after")
    def one_gpu_request(self) -> Self:
        if self.gpus is not None and self.gpu_ids is not None:
            raise rule_broken("gpu_ids", "give either gpus (a count) or gpu_ids (a list), not both")
        return self


# Each task's own fields, from its record: a request refuses those of another task.
TASK_FIELDS = {name: task.part("request_fields") for name, task in TASKS.items()}


class DatasetRequest(JobFields, *TASK_FIELDS.values()):
    """A dataset from server folders (inside the data roots), or from an uploaded archive (multipart
    field `archive`), where the paths are relative to the archive and default to images/, labels/...
    A colorization dataset reads only images (and val_images): its targets come from each photo."""

    task: Literal[tuple(TASKS)] = DEFAULT_TASK.name
    """what the dataset is for: a task of digitslite.tasks (segmentation: images and label maps;
    colorization: colour photos alone)"""
    images: Path | None = None
    val_images: Path | None = None
    val_percent: whole(0, 100) | None = None
    resize: Literal[RESIZE_MODES] = "none"
    width: whole(1, MAX_SIDE) | None = None
    height: whole(1, MAX_SIDE) | None = None
    seed: whole(0) | None = None
    check: Flag = True
    """accepted for older clients and ignored: every dataset job checks its pairs as its first phase"""

    @model_validator(mode="after")
    def fields_of_the_task(self) -> Self:
        own = TASK_FIELDS[self.task].model_fields
        for name in {name for fields in TASK_FIELDS.values() for name in fields.model_fields} - set(own):
            if name in self.model_fields_set and getattr(self, name) != type(self).model_fields[name].default:
                raise rule_broken(name, f"{name} does not apply to task {self.task}; leave it out")
        return self


class ModelRequest(JobFields, GpuFields):
    """Training; lists in base_lr or batch_size make a sweep of jobs. The network comes from exactly one
    of network, network_prototxt, network_job and pretrained."""

    dataset: JobId
    network: text(200, "a standard network (digitslite/network_defs)") | None = None
    network_prototxt: Prototxt | None = None
    network_job: JobId | None = None
    """a model job whose network and snapshot to continue from"""
    network_snapshot: whole(0) | None = None
    pretrained: JobId | None = None
    weights_job: JobId | None = None
    """initial weights (with network or network_prototxt): a model or pretrained job"""
    weights_snapshot: whole(0) | None = None
    solver_type: Literal[SOLVER_TYPES] | None = None
    base_lr: sweep(number(positive=True)) | None = None
    lr_policy: Literal[POLICIES] | None = None
    gamma: number(positive=True) | None = None
    power: number(0) | None = None
    stepsize: whole(1, INT32_MAX) | None = None
    stepvalue: StepValues | None = None
    momentum: number(0, 1) | None = None
    momentum2: number(0, 1) | None = None
    delta: number(positive=True) | None = None
    rms_decay: number(0, 1) | None = None
    weight_decay: number(0) | None = None
    max_iter: whole(1, INT32_MAX) | None = None
    epochs: whole(1, MAX_EPOCHS) | None = None
    batch_size: sweep(whole(1, INT32_MAX)) | None = None
    iter_size: whole(1, MAX_ITER_SIZE) | None = None
    test_interval: whole(1, INT32_MAX) | None = None
    snapshot_interval: whole(1, INT32_MAX) | None = None
    display: whole(0, INT32_MAX) | None = None
    seed: whole(0) | None = None
    amp: Literal[(NO_AMP, *AMP_MODES)] = NO_AMP
    channels_last: Flag = False
    compile: Flag = False
    ranks: whole(1, description="data-parallel ranks on this node: the GPU count for a GPU job, CPU "
                                "processes (gloo) otherwise") | None = None
    nnodes: whole(1, description="nodes taking part (docs/SCALING.md)") | None = None
    node_rank: whole(0, description="this node's number, 0 to nnodes-1") | None = None
    master: text(300, "ADDR:PORT of node 0, required with several nodes") | None = None
    sync_batchnorm: Flag = False
    recompute: text(2000, "re-materialization: auto, layers per segment, or blob names to cut after "
                          "(docs/SCALING.md)") | None = None
    pipeline_stages: whole(1, description="pipeline stages, one GPU or CPU slot each, in `ranks` "
                                          "replicas") | None = None
    micro_batches: whole(1, MAX_ITER_SIZE, "batches per update through the pipeline") | None = None
    pipeline_cuts: text(2000, "blob names to cut after, comma-separated") | None = None
    pipeline_schedule: Literal[PIPELINE_SCHEDULES] = PIPELINE_SCHEDULES[0]
    pipeline_balance: Literal[BALANCES] = BALANCES[0]

    @model_validator(mode="after")
    def rules_between_fields(self) -> Self:
        self._pipeline_rules()
        sources = [name for name in NETWORK_SOURCES if getattr(self, name) is not None]
        if len(sources) != 1:
            raise rule_broken("network", "give exactly one network source: network (a standard network), "
                                         f"network_prototxt, network_job or pretrained (got "
                                         f"{', '.join(sources) or 'none'})")
        if self.weights_job is not None and sources[0] not in ("network", "network_prototxt"):
            raise rule_broken("weights_job", "weights_job goes with network or network_prototxt; network_job "
                                             "and pretrained bring their own weights")
        for needed in POLICY_FIELDS.get(self.lr_policy, ()):
            if getattr(self, needed) is None:
                raise rule_broken(needed, f"{needed} is required with lr_policy {self.lr_policy}")
        if self.max_iter is not None and self.epochs is not None:
            raise rule_broken("epochs", "give either max_iter or epochs, not both")
        return self

    def _pipeline_rules(self) -> None:
        if self.recompute is not None and self.recompute.strip() in ("0", ""):
            raise rule_broken("recompute", "recompute: give auto, a number of layers per segment (at least "
                                           "1), or blob names such as pool2,pool4")
        stages = self.pipeline_stages or 1
        if stages == 1 and ((self.micro_batches or 1) > 1 or self.pipeline_cuts):
            raise rule_broken("pipeline_stages", "micro_batches and pipeline_cuts go with pipeline_stages "
                                                 "above 1; on one process use iter_size")
        if stages > 1 and ((self.nnodes or 1) > 1 or self.sync_batchnorm):
            raise rule_broken("pipeline_stages", "pipeline_stages: a pipelined job runs its stages and "
                                                 "replicas (ranks) on this server; leave nnodes and "
                                                 "sync_batchnorm out")
        cuts = self.cuts()
        if cuts and len(cuts) != stages - 1:
            raise rule_broken("pipeline_cuts", f"pipeline_cuts: {len(cuts)} cuts make {len(cuts) + 1} "
                                               f"stages, not {stages}; give {stages - 1} blob names")

    def cuts(self) -> list[str]:
        """The pipeline cuts as a list of blob names."""
        return [cut.strip() for cut in (self.pipeline_cuts or "").split(",") if cut.strip()]


class InferenceRequest(JobFields, GpuFields):
    """Images from exactly one of: uploaded files (multipart field `images`, repeatable), a server
    folder, or a dataset job's validation split."""

    model: JobId
    """the model or pretrained job (the path's job_id)"""
    snapshot: whole(0, description="iteration; default the newest") | None = None
    folder: Path | None = None
    dataset: JobId | None = None
    limit: whole(1, description="at most this many images") | None = None


class PretrainedRequest(JobFields):
    """Weights with their deploy network: uploaded files (one multipart field per role, or one
    `archive`: a model download of digitslite or DIGITS), or server paths inside the data roots."""

    deploy: Path | None = None
    weights: Path | None = None
    network: Path | None = None
    """the training network (train_val)"""
    dataset_info: Path | None = None
    """a dataset.json: class names and palette"""
    classes: Path | None = None
    colormap: Path | None = None


class StoreImportRequest(Body):
    """An entry of a model store as a pretrained job; every file's checksum is verified."""

    store: Path
    """a store GET /store/models lists, or a store folder inside the data roots"""
    name: Name
    """the entry to import (a model's id in the listing)"""
    group_upscores: Flag = False
    """make ungrouped diagonal upsampling layers (fcn.berkeleyvision.org) grouped, as in DIGITS' FCNs"""
    weights_file: Path | None = None
    """a copy of the weights on the server, inside the data roots, used instead of downloading them"""
    job_name: Name | None = None
    """the pretrained job's name (default: the entry)"""
    group: Name | None = None
    notes: Notes | None = None
    priority: whole(-100, 100, "higher runs first") | None = None


class ConvolutionalizeRequest(JobFields):
    """FCN initial weights made by net surgery from a pretrained classifier."""

    classifier: JobId
    """the pretrained classifier job (the path's job_id)"""
    num_classes: whole(1, MAX_CLASSES, "the FCN's classes") = 21
    network: Name = "fcn_alexnet"
    """the standard FCN to make"""


class PublishRequest(Body):
    """A model job's snapshot as an entry of a store folder on the server."""

    store_dir: Path
    """the store folder, inside the data roots (made if new)"""
    name: Name
    """the entry's folder name"""
    snapshot: whole(0, description="iteration; default the newest") | None = None
    title: Name | None = None
    """display name; default the job's name"""
    note: Notes | None = None
    license: Name | None = None
    source: Notes | None = None
    """where the model comes from; default the job"""


class JobListQuery(Query):
    model_config = ConfigDict(extra="forbid")

    kind: Literal[KIND_NAMES] | None = None
    status: Literal[tuple(str(status) for status in Status)] | None = None
    owner: text(64) | None = None
    text: Search | None = None
    page: whole(1, MAX_PAGE) = 1
    per_page: whole(1, MAX_PER_PAGE) = 50


class RecordsQuery(Query):
    after: whole(0, description="records already read") = 0


class LogQuery(Query):
    offset: whole(0, description="bytes already read") = 0


class DeleteQuery(Query):
    force: Flag = False
    """also when other jobs use it, or it runs"""


class SnapshotQuery(Query):
    snapshot: whole(0, description="iteration; default the newest") | None = None


# The body that creates each kind of job (pretrained jobs are also made by StoreImportRequest and
# ConvolutionalizeRequest, which their own routes read).
REQUEST_SCHEMAS: dict[str, type[Body]] = {"dataset": DatasetRequest, "model": ModelRequest,
                                          "inference": InferenceRequest, "pretrained": PretrainedRequest}
