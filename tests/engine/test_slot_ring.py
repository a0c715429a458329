"""The shared-memory slot ring between a stream's workers and the training process: slots reused in
turn, a taken slot never overwritten, the pipe for what does not fit, and streams through it give
the batches of the per-sample transform, leave nothing in /dev/shm and stop their workers."""
import os

import numpy as np
import pytest
import torch

from digitslite.engine import feeds, slot_ring
from digitslite.engine.batch_stream import Shard
from digitslite.engine.data import BoundDataLayer, SegmentationLmdbDataset, SegmentationTransform, load_mean
from digitslite.engine.feeds import DatasetStream
from digitslite.engine.slot_ring import SlotRing
from tests.datasets.helpers import make_folders
from tests.datasets.test_engine_data import build
from tests.datasets.test_stream_transform import BATCH, SEED, per_sample_batches


def _records(value: int) -> list[np.ndarray]:
    """A strided colour view (as a decoder gives) and a 16-bit label, filled from `value`."""
    image = np.arange(value, value + 2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    return [image.transpose(2, 0, 1)[::-1], np.full((2, 3), 1000 + value, np.uint16)]


def _taken(ring: SlotRing, places) -> list[np.ndarray]:
    return [array.copy() for array in ring.take(places)]


def _put(ring: SlotRing, sequence: int, records: list[np.ndarray]):
    """What a worker does without a decoder that writes into the slot: seal arrays made elsewhere."""
    writer = ring.writer(sequence)
    return None if writer is None else writer.seal(records)


def test_batches_go_to_slot_j_mod_slots_and_come_back_equal():
    ring = SlotRing(3, SlotRing.room(_records(0)))
    for sequence in range(7):
        records = _records(sequence)
        slot, places = _put(ring, sequence, records)
        assert slot == sequence % 3
        for got, expected in zip(_taken(ring, places), records, strict=True):
            assert got.dtype == expected.dtype and np.array_equal(got, expected)
        ring.release(slot)


def test_arrays_decoded_into_the_slot_are_sent_where_they_lie():
    """A decoder writes into `allocate`'s arrays: sealing copies nothing, views of them included
    (a one-channel label's H x W plane); an array made elsewhere is copied in after them."""
    ring = SlotRing(2, 4096)
    writer = ring.writer(1)
    image = writer.allocate((4, 2, 3), np.dtype(np.uint8))
    image[...] = _records(5)[0]
    label = writer.allocate((1, 2, 3), np.dtype(np.uint16))
    label[0] = _records(5)[1]
    elsewhere = np.arange(6, dtype=np.uint8).reshape(2, 3)
    slot, places = writer.seal([image, label[0], elsewhere])
    assert slot == 1 and [offset - 4096 for offset, _, _ in places] == [0, 64, 128]
    assert [shape for _, _, shape in places] == [(4, 2, 3), (2, 3), (2, 3)]
    for got, expected in zip(_taken(ring, places), [*_records(5), elsewhere], strict=True):
        assert np.array_equal(got, expected)
    assert ring.writer(3) is None     # batch 3 wants slot 1: taken until released


def test_a_taken_slot_is_not_overwritten_until_released():
    ring = SlotRing(2, SlotRing.room(_records(0)))
    slot, places = _put(ring, 0, _records(0))
    assert ring.writer(2) is None           # batch 2 wants slot 0: still taken
    assert np.array_equal(ring.take(places)[0], _records(0)[0])
    assert _put(ring, 1, _records(1))[0] == 1           # another slot is free
    ring.release(slot)
    slot, places = _put(ring, 2, _records(9))
    assert slot == 0 and np.array_equal(ring.take(places)[1], _records(9)[1])


def test_a_batch_larger_than_a_slot_is_refused_and_leaves_the_slot_free():
    records = _records(0)
    ring = SlotRing(2, SlotRing.room(records[:1]))
    writer = ring.writer(0)
    inside = writer.allocate(records[0].shape, records[0].dtype)
    outside = writer.allocate(records[1].shape, records[1].dtype)     # no room left: a new array
    assert writer.seal([inside, outside]) is None
    assert _put(ring, 0, records[:1])[0] == 0


@pytest.fixture(scope="module")
def bound(tmp_path_factory):
    root = tmp_path_factory.mktemp("ring")
    make_folders(root, 5)
    dataset_dir = build(root)
    transform = SegmentationTransform(crop_size=(6, 7), mirror=True, scale=0.00390625,
                                      mean=load_mean(dataset_dir / "mean.binaryproto", "image"))
    dataset = SegmentationLmdbDataset(dataset_dir / "train_db", transform)
    return BoundDataLayer(("data",), dataset, BATCH, {"data": "image", "label": "label"})


def _shm_files(pids: set[int]) -> set[str]:
    """torch's shared-memory files of these processes (torch names them torch_<pid>_...)."""
    return {name for name in os.listdir("/dev/shm") if any(name.startswith(f"torch_{pid}_") for pid in pids)}


@pytest.mark.parametrize("case", ["through the ring", "oversize batches", "no room in /dev/shm"])
def test_stream_batches_equal_the_per_sample_transform(bound, monkeypatch, case):
    if case == "oversize batches":
        monkeypatch.setattr(DatasetStream, "_batch_bytes", lambda self: 64)
    if case == "no room in /dev/shm":
        monkeypatch.setattr(slot_ring, "_shm_free", lambda: 0)
    slots = []
    received = feeds._received
    monkeypatch.setattr(feeds, "_received", lambda item, ring: slots.append(item[0]) or received(item, ring))
    stream = DatasetStream([bound], SEED, workers=2)
    try:
        for expected_images, expected_labels in per_sample_batches(bound.dataset, rounds=8):
            batch = stream.next()
            assert torch.equal(batch["data"], expected_images)
            assert torch.equal(batch["label"], expected_labels)
        workers, ring = stream._iterator._workers, stream._ring
        pids = {os.getpid(), *(worker.pid for worker in workers)}
    finally:
        stream.close()
    if case == "through the ring":
        assert slots == [batch % ring.slots for batch in range(8)]
    else:
        assert slots == [None] * 8
    assert not any(worker.is_alive() for worker in workers)
    assert not _shm_files(pids)


def _taken_batches(bound, workers: int, shard: Shard) -> list[torch.Tensor]:
    """3 batches, a seek to where the stream is, 3 more, a seek elsewhere, 4 more."""
    stream = DatasetStream([bound], SEED, workers=workers, shard=shard)
    try:
        images = [stream.next()["data"]]
        assert len(stream._pending) == (7 if workers else 0)     # the rest of an item of 8 batches
        images += [stream.next()["data"] for _ in range(2)]
        stream.seek(stream.position)
        images += [stream.next()["data"] for _ in range(3)]
        stream.seek(7)
        return images + [stream.next()["data"] for _ in range(4)]
    finally:
        stream.close()


@pytest.mark.parametrize("shard", [Shard(), Shard(rank=1, world_size=2)])
def test_several_batches_to_an_item_keep_the_data_order_of_ranks_and_seeks(bound, shard):
    """Small batches travel 8 to a DataLoader item here; the batches are those read in process."""
    expected = _taken_batches(bound, 0, shard)
    got = _taken_batches(bound, 2, shard)
    assert all(torch.equal(one, other) for one, other in zip(got, expected, strict=True))
