"""What every stream of input batches promises: {top name: tensor} per batch, endless, resumable.

Caffe's Data layer reads records in key order and wraps around; a test net's reader continues
where the previous test pass stopped. A stream here does the same, on one rank or on several.

The data-order contract (what makes a snapshot resumable with any number of ranks):
  * A stream is one global sequence. For an LMDB source, sample s is record s mod N, its random
    crop/mirror drawn from a generator seeded by (seed, source, s): a pure function of s, so
    neither DataLoader workers nor ranks change it. For a caller's feed, the unit is a batch.
  * The global sequence is cut into batches of the per-rank batch size B; batch j holds samples
    [jB, (j+1)B). Batches are dealt round-robin: on W ranks, rank r takes batches r, r+W, r+2W...
    So one training micro-step of W ranks covers W·B consecutive samples, exactly the samples of
    one batch of W·B in a single process, and one test pass i runs on rank i mod W.
  * `position` counts the units taken by all ranks together (samples of the first source, or feed
    batches); a snapshot stores it. Resuming seeks every rank to it, whatever W and B are now: the
    run continues with the first sample nobody has taken.
A net reading several datasets advances them in step, each at the rate of its own batch size.

The streams themselves live beside it: digitslite.engine.feeds (a caller's feed, LMDB datasets,
and the choice of stream for a net) and digitslite.engine.hdf5_stream (HDF5Data layers).
"""
from dataclasses import dataclass

import torch

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Shard:
    """Which batches of the global sequence this process takes: rank r of W takes r, r+W, ..."""

    rank: int = 0
    world_size: int = 1


class BatchStream:
    """This rank's batches of a global sequence; `position` is how much of it all ranks have taken."""

    shard: Shard = Shard()

    @property
    def position(self) -> int:
        raise NotImplementedError

    def next(self) -> Batch:
        """This rank's batch of the next round (every rank calls it once per round)."""
        raise NotImplementedError

    def seek(self, position: int) -> None:
        """Continue from `position`: rank r's next batch is then batch r after it."""
        raise NotImplementedError

    def advanced(self, start: int, batches: int) -> int:
        """The position `batches` whole batches after `start` (a test of test_iter passes takes
        test_iter batches, however they were dealt)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release worker processes, if any."""
