"""A colorization dataset's chroma database feeds the hypercolumn nets' "chroma" top, in step with
the lightness, as C x H x W labels cropped and mirrored with the image."""
import random
from pathlib import Path

import lmdb
import numpy as np

from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import bind_data_sources
from digitslite.caffe.prototxt import filter_net
from digitslite.datasets.reader import close_readers
from digitslite.engine.data import SegmentationTransform, bind_data_layers
from digitslite.networks import load_network


def _write(path: Path, records: list[np.ndarray]) -> None:
    path.mkdir(parents=True)
    with lmdb.open(str(path), map_size=1 << 22) as env, env.begin(write=True) as txn:
        for index, planes in enumerate(records):
            datum = caffe_pb2.Datum(channels=planes.shape[0], height=planes.shape[1], width=planes.shape[2],
                                    data=planes.astype(np.uint8).tobytes())
            txn.put(f"{index:09d}".encode(), datum.SerializeToString())


def test_the_chroma_top_reads_the_chroma_database_in_step_with_the_lightness(tmp_path):
    lightness = [np.full((1, 4, 5), 10 * index) for index in range(3)]
    chroma = [np.stack([np.full((4, 5), 100 + index), np.arange(20).reshape(4, 5)]) for index in range(3)]
    for stage in ("train_db", "val_db"):
        _write(tmp_path / stage / "features", lightness)
        _write(tmp_path / stage / "chroma", chroma)
        _write(tmp_path / stage / "labels", [np.zeros((1, 4, 5))] * 3)
    net = bind_data_sources(load_network("colorize_hypercolumns_tiny", 1), tmp_path)
    sources = {layer.data_param.source for layer in net.layer if layer.type == "Data"}
    assert str(tmp_path / "train_db" / "chroma") in sources
    assert str(tmp_path / "val_db" / "labels") not in sources
    train = filter_net(net, "train", stages=["train"]).layer
    try:
        (feed,) = bind_data_layers(train, caffe_pb2.TRAIN, tmp_path)
        assert feed.tops == {"data": "image", "chroma": "label"}
        image, label = feed.dataset[2]
        assert image.shape == (1, 4, 5) and float(image[0, 0, 0]) == 20
        assert label.shape == (2, 4, 5) and int(label[0, 0, 0]) == 102 and int(label[1, 3, 4]) == 19
        mirrored = SegmentationTransform(mirror=True, crop_size=(2, 3), random_crop=False)
        _, cropped = mirrored(*feed.dataset.record(2), random.Random(1))
        window = np.arange(20).reshape(4, 5)[1:3, 1:4]
        assert cropped[1].tolist() in (window.tolist(), window[:, ::-1].tolist())
    finally:
        close_readers()
