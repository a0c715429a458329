"""Where a rank sits in a pipeline x data-parallel run, and the process groups that follow from it.

K stages times D replicas make K·D ranks; rank = replica·K + stage, so a replica's stages are
neighbouring ranks (neighbouring GPUs on a node) and rank 0 is stage 0 of replica 0. A replica's
stages pass activations in its pipeline group; the D copies of one stage add their gradients in
their stage group. With one replica the pipeline group is the whole world and there is no stage group.
"""
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import distributed

from digitslite.engine.distributed import Ranks
from digitslite.errors import UserError


@dataclass(frozen=True)
class StageGroups:
    stage: int
    stages: int
    replica: int
    replicas: int
    pipeline: Any = None        # this replica's stages (None: the default group)
    replicas_of_stage: Any = None   # this stage in every replica (None: one replica)

    @classmethod
    def join(cls, ranks: Ranks, stages: int) -> "StageGroups":
        """Every rank calls this at the same point: torch creates each group on all ranks."""
        if ranks.world_size % stages:
            raise UserError(f"--pipeline-stages {stages} needs a multiple of {stages} processes (one per "
                            f"stage of each replica), but {ranks.world_size} were started; with --gpus, "
                            f"name {stages} GPUs per replica")
        replicas = ranks.world_size // stages
        replica, stage = divmod(ranks.rank, stages)
        if replicas == 1:
            return cls(stage, stages, 0, 1)
        pipelines = [distributed.new_group([copy * stages + index for index in range(stages)])
                     for copy in range(replicas)]
        copies = [distributed.new_group([copy * stages + index for copy in range(replicas)])
                  for index in range(stages)]
        return cls(stage, stages, replica, replicas, pipelines[replica], copies[stage])

    def broadcast_over_replicas(self, tensors: Iterable[torch.Tensor]) -> None:
        """Replica 0's values of this stage's tensors to its other replicas (each tensor once)."""
        if self.replicas == 1:
            return
        seen: set[int] = set()
        for tensor in tensors:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                # src is a global rank: this stage in replica 0 is rank `stage`
                distributed.broadcast(tensor.data, src=self.stage, group=self.replicas_of_stage)

    def sum_over_replicas(self, grads: Iterable[torch.Tensor | None]) -> None:
        """Add each gradient over the replicas, in place (Caffe's multi-GPU sum; the solver divides
        by iter_size = micro-batches x replicas)."""
        if self.replicas == 1:
            return
        for grad in grads:
            if grad is not None:
                distributed.all_reduce(grad, group=self.replicas_of_stage)
