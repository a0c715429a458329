"""Training streams send uint8 records and transform them in the training process: the batches are
bit for bit those of the per-sample NumPy transform (SegmentationTransform.__call__) for the same seed."""
import random

import lmdb
import numpy as np
import pytest
import torch

from digitslite.caffe import caffe_pb2
from digitslite.datasets.reader import close_readers
from digitslite.engine.data import (
    BoundDataLayer,
    SegmentationLmdbDataset,
    SegmentationTransform,
    load_mean,
)
from digitslite.engine.feeds import DatasetStream, _applied, _as_tensors, _BatchAt, _finish, sample_draws
from tests.datasets.helpers import make_folders
from tests.datasets.test_engine_data import build

SEED, BATCH = 11, 3


def per_sample_batches(dataset: SegmentationLmdbDataset, rounds: int) -> list[tuple[torch.Tensor, ...]]:
    """The batches as the stream made them before: NumPy transform per sample, drawn from (seed, 0, s)."""
    batches = []
    for start in range(0, rounds * BATCH, BATCH):
        pairs = [dataset.sample(sample % len(dataset), sample_draws(SEED, 0, sample))
                 for sample in range(start, start + BATCH)]
        batches.append((torch.stack([image for image, _ in pairs]),
                        torch.stack([label for _, label in pairs]).unsqueeze(1).float()))
    return batches


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    make_folders(root, 4)
    return build(root)


TRANSFORMS = {
    "none": lambda mean: None,
    "mean image, scale, random crop, mirror": lambda mean: SegmentationTransform(
        crop_size=(6, 7), mirror=True, mean=load_mean(mean, "image"), scale=0.00390625),
    "pixel mean, padding crop, mirror": lambda mean: SegmentationTransform(
        crop_size=13, mirror=True, mean=load_mean(mean, "pixel"), ignore_label=255),
    "mean values, scale jitter, centre crop": lambda mean: SegmentationTransform(
        crop_size=8, random_crop=False, scale_jitter=(1.1, 1.7), scale=1.7,
        mean=np.array([104.0, 117.0, 123.0], np.float32)),
}


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_stream_batches_equal_the_per_sample_transform(dataset_dir, name, workers):
    transform = TRANSFORMS[name](dataset_dir / "mean.binaryproto")
    dataset = SegmentationLmdbDataset(dataset_dir / "train_db", transform)
    bound = BoundDataLayer(("data",), dataset, BATCH, {"data": "image", "label": "label"})
    stream = DatasetStream([bound], SEED, workers=workers)
    try:
        for expected_images, expected_labels in per_sample_batches(dataset, rounds=3):
            batch = stream.next()
            assert batch["data"].dtype == torch.float32 and batch["label"].dtype == torch.float32
            assert torch.equal(batch["data"], expected_images)
            assert torch.equal(batch["label"], expected_labels)
    finally:
        stream.close()


@pytest.mark.parametrize("name", [name for name in TRANSFORMS if name != "none"])
def test_the_torch_transform_for_accelerators_equals_numpy(dataset_dir, name):
    """The arithmetic a stream runs on a GPU, run here on CPU tensors, against the NumPy transform."""
    transform = TRANSFORMS[name](dataset_dir / "mean.binaryproto")
    dataset = SegmentationLmdbDataset(dataset_dir / "train_db", transform)
    for sample in range(8):
        image, label, placement = dataset.raw_sample(sample % len(dataset), random.Random(sample))
        expected_image, expected_label = transform.place(image, label, placement)
        mean = transform.mean_tensor(image.shape, torch.device("cpu"))
        image_tensor, label_tensor = (torch.from_numpy(np.array(part, order="C")) for part in (image, label))
        got_image, got_label = transform.apply(image_tensor, label_tensor, placement, mean)
        assert torch.equal(got_image, torch.from_numpy(np.ascontiguousarray(expected_image)))
        assert torch.equal(got_label, torch.from_numpy(np.array(expected_label, dtype=np.int64)))


@pytest.mark.parametrize("finish", ["cpu: NumPy into the batch", "accelerator: torch, run on the CPU"])
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_raw_uint8_batches_finished_in_the_training_process_equal_the_per_sample_transform(dataset_dir, name,
                                                                                          finish):
    """What a stream does: uint8 records and placements from the worker, the transform after the
    hand-over, by either path."""
    transform = TRANSFORMS[name](dataset_dir / "mean.binaryproto")
    dataset = SegmentationLmdbDataset(dataset_dir / "train_db", transform)
    bound = BoundDataLayer(("data",), dataset, BATCH, {"data": "image", "label": "label"})
    items = _BatchAt([bound], SEED)
    for round_index, (expected_images, expected_labels) in enumerate(per_sample_batches(dataset, rounds=3)):
        [(slot, raw)] = items[(round_index, ((round_index * BATCH,),))]
        assert slot is None and raw[0][0][0].dtype == np.uint8
        if finish.startswith("cpu"):
            batch = _finish(raw, [bound], torch.device("cpu"), {})
            images, labels = batch["data"], batch["label"]
        else:
            images, labels = _applied(bound, *_as_tensors([(slot, raw)])[0][1][0], torch.device("cpu"), {}, 0)
        assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)


def _write_raw(path, records: list[np.ndarray]) -> None:
    """An LMDB of unencoded C x H x W uint8 Datums."""
    path.mkdir(parents=True)
    with lmdb.open(str(path), map_size=1 << 22) as env, env.begin(write=True) as txn:
        for index, planes in enumerate(records):
            datum = caffe_pb2.Datum(channels=planes.shape[0], height=planes.shape[1], width=planes.shape[2],
                                    data=planes.tobytes())
            txn.put(f"{index:09d}".encode(), datum.SerializeToString())


@pytest.mark.parametrize("finish", ["cpu: NumPy into the batch", "accelerator: torch, run on the CPU"])
def test_labels_of_several_channels_stay_c_x_h_x_w_and_move_with_the_image(tmp_path, finish):
    """Colorization's chroma labels (2 x H x W): cropped and mirrored with the image, a N x 2 x H x W blob."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (1, 5, 6), dtype=np.uint8) for _ in range(4)]
    chroma = [rng.integers(0, 256, (2, 5, 6), dtype=np.uint8) for _ in range(4)]
    _write_raw(tmp_path / "features", images)
    _write_raw(tmp_path / "chroma", chroma)
    transform = SegmentationTransform(crop_size=(3, 4), mirror=True, scale=0.5)
    dataset = SegmentationLmdbDataset(tmp_path, transform, labels="chroma")
    bound = BoundDataLayer(("data",), dataset, 4, {"data": "image", "chroma": "label"})  # mirrored or not
    try:
        [(_, raw)] = _BatchAt([bound], SEED)[(0, ((0,),))]
        if finish.startswith("cpu"):
            batch = _finish(raw, [bound], torch.device("cpu"), {})
            got_images, got_labels = batch["data"], batch["chroma"]
        else:
            records = _as_tensors([(None, raw)])[0][1][0]
            got_images, got_labels = _applied(bound, *records, torch.device("cpu"), {}, 0)
        assert got_labels.shape == (4, 2, 3, 4) and got_labels.dtype == torch.float32
        for sample, placement in enumerate(raw[0][2]):
            rows, cols = slice(placement.top, placement.top + 3), slice(placement.left, placement.left + 4)
            flip = slice(None, None, -1 if placement.mirror else 1)
            expected_image = images[sample][:, rows, cols][:, :, flip].astype(np.float32) * np.float32(0.5)
            assert np.array_equal(got_images[sample].numpy(), expected_image)
            assert np.array_equal(got_labels[sample].numpy(), chroma[sample][:, rows, cols][:, :, flip])
    finally:
        close_readers()
