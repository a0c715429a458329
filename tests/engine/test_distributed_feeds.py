"""The data-order contract of several ranks (digitslite.engine.feeds), in one process: sharding,
positions, re-sharding on resume, test passes dealt round-robin."""
from pathlib import Path

import pytest
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import filter_net, parse_net
from digitslite.engine.batch_stream import Shard
from digitslite.engine.feeds import FeedStream, data_layer_stream
from tests.engine.test_distributed_support import equivalence_net
from tests.engine.test_train_support import write_dataset

SEED = 11


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dataset"), train_count=10, val_count=4)


def stream(dataset: Path, batch: int, shard: Shard, seed: int = SEED):
    """The train stream of the mirrored FCN with per-rank batch `batch`."""
    net = filter_net(parse_net(equivalence_net(batch)), "train", 0, ("train",))
    layers = [layer for layer in net.layer if layer.type == "Data"]
    return data_layer_stream(layers, caffe_pb2.TRAIN, dataset, seed, shard=shard)


def joined(*batches: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {top: torch.cat([batch[top] for batch in batches]) for top in batches[0]}


def assert_same_batch(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for top in a:
        assert torch.equal(a[top], b[top]), top


def test_two_ranks_with_batch_b_read_together_one_batch_of_2b_with_the_same_random_mirrors(dataset):
    whole = stream(dataset, 4, Shard())
    halves = [stream(dataset, 2, Shard(rank, 2)) for rank in range(2)]
    for _ in range(4):      # 16 samples of 10 records: the sequence wraps around
        assert_same_batch(joined(*(half.next() for half in halves)), whole.next())
    assert whole.position == halves[0].position == halves[1].position == 16
    whole.seek(0)
    other_seed = stream(dataset, 4, Shard(), seed=SEED + 1)
    assert not torch.equal(whole.next()["data"], other_seed.next()["data"]), "the mirrors must be random"


def test_a_position_saved_by_two_ranks_resumes_on_one_with_the_next_untaken_sample(dataset):
    halves = [stream(dataset, 2, Shard(rank, 2)) for rank in range(2)]
    for _ in range(3):
        for half in halves:
            half.next()
    saved = halves[0].position
    assert saved == 12
    expected = joined(*(half.next() for half in halves))
    alone = stream(dataset, 4, Shard())
    alone.seek(saved)
    assert_same_batch(alone.next(), expected)
    same_batch = stream(dataset, 2, Shard())
    same_batch.seek(saved)
    assert_same_batch(same_batch.next(), {top: values[:2] for top, values in expected.items()})


def test_test_passes_are_dealt_round_robin_and_every_rank_ends_where_one_process_would(dataset):
    single = stream(dataset, 2, Shard())
    reference = [single.next() for _ in range(6)]      # 5 test passes, then the next test's first
    ranks = [stream(dataset, 2, Shard(rank, 2)) for rank in range(2)]
    for rank, ranked in enumerate(ranks):
        start = ranked.position
        seen = [ranked.next() for _ in range(rank, 5, 2)]
        for batch, index in zip(seen, range(rank, 5, 2), strict=True):
            assert_same_batch(batch, reference[index])
        ranked.seek(ranked.advanced(start, 5))
        assert ranked.position == 10
    assert_same_batch(ranks[0].next(), reference[5])


def test_a_feed_of_batches_is_dealt_to_the_ranks_by_batch_indexed_or_iterated():
    batches = [{"data": torch.full((1,), float(index))} for index in range(5)]

    class Iterated:             # re-iterable but not indexable
        def __iter__(self):
            return iter(batches)

    for feed in (batches, Iterated()):
        shards = [FeedStream(feed, "train", Shard(rank, 2)) for rank in range(2)]
        taken = [[float(shard.next()["data"]) for _ in range(4)] for shard in shards]
        assert taken == [[0, 2, 4, 1], [1, 3, 0, 2]]
        assert shards[0].position == 8
        resumed = FeedStream(feed, "train")
        resumed.seek(shards[0].position)
        assert float(resumed.next()["data"]) == 3
