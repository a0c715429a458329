"""The batch stream of a net's HDF5Data layers (rows from digitslite.caffe.hdf5_source).

It keeps the data-order contract of digitslite.engine.batch_stream: the unit of `position` is one row of
the first layer, batch j of the global sequence holds rows [jB, (j+1)B), and rank r of W takes
batches r, r+W, ...; each further layer advances at the rate of its own batch size.
"""
from collections.abc import Sequence
from pathlib import Path

import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.hdf5_source import HDF5Rows
from digitslite.engine.batch_stream import Batch, BatchStream, Shard


class HDF5Stream(BatchStream):
    """This rank's batches of HDF5Data layers: every top of every layer, float32."""

    def __init__(self, layers: Sequence[caffe_pb2.LayerParameter], base: Path | None, seed: int,
                 shard: Shard) -> None:
        self.sources = [HDF5Rows(layer, base, (seed, index)) for index, layer in enumerate(layers)]
        self.sizes = [layer.hdf5_data_param.batch_size for layer in layers]
        self.shard = shard
        self.base, self.rounds = 0, 0

    @property
    def position(self) -> int:
        return self.base + self.rounds * self.shard.world_size * self.sizes[0]

    def next(self) -> Batch:
        batch = self.shard.rank + self.rounds * self.shard.world_size
        self.rounds += 1
        tops: Batch = {}
        for rows, size in zip(self.sources, self.sizes, strict=True):
            start = self.base * size // self.sizes[0] + batch * size
            tops.update((top, torch.from_numpy(values)) for top, values in rows.rows(start, size).items())
        return tops

    def seek(self, position: int) -> None:
        self.base, self.rounds = position, 0

    def advanced(self, start: int, batches: int) -> int:
        return start + batches * self.sizes[0]
