"""HDF5Data: shapes read from the files, Caffe's row order (file by file, wrapping, shuffled per
pass), the ranks' share of the batches, and a training run reading .h5 files."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from digitslite.caffe.prototxt import parse_net, parse_solver
from digitslite.caffe.shapes import infer_shapes
from digitslite.engine.batch_stream import Shard
from digitslite.engine.dispatch import train
from digitslite.engine.feeds import data_layer_stream
from digitslite.engine.train import TrainConfig
from digitslite.errors import UserError


def write_files(folder: Path, rows: list[int]) -> Path:
    """.h5 files of rows·(2 features, 1 target): features row r = (r, −r), target 3r − 1; the list file."""
    names, first = [], 0
    for index, count in enumerate(rows):
        values = np.arange(first, first + count, dtype=np.float64)
        path = folder / f"part{index}.h5"
        with h5py.File(path, "w") as handle:
            handle["data"] = np.stack([values, -values], axis=1)
            handle["label"] = 3 * values - 1
        names.append(str(path))
        first += count
    (folder / "list.txt").write_text("\n".join(names) + "\n")
    return folder / "list.txt"


def layer(source: Path | str, batch: int, shuffle: bool = False) -> str:
    return (f'layer {{ name: "h5" type: "HDF5Data" top: "data" top: "label" include {{ phase: TRAIN }} '
            f'hdf5_data_param {{ source: "{source}" batch_size: {batch} '
            f'shuffle: {str(shuffle).lower()} }} }}\n')


def stream(source: Path, batch: int, shuffle: bool = False, shard: Shard | None = None):
    net = parse_net(layer(source, batch, shuffle))
    return data_layer_stream(list(net.layer), 0, None, seed=5, shard=shard or Shard())


def test_top_shapes_come_from_the_first_file(tmp_path):
    source = write_files(tmp_path, [5, 2])
    (shapes,) = infer_shapes(parse_net(layer(source, 3)))
    assert shapes.tops == [(3, 2), (3,)]


def test_rows_run_file_after_file_and_wrap_around(tmp_path):
    batches = stream(write_files(tmp_path, [5, 2]), 3)
    firsts = [batches.next()["data"][:, 0].tolist() for _ in range(3)]
    assert firsts == [[0, 1, 2], [3, 4, 5], [6, 0, 1]]
    assert batches.position == 9


def test_two_ranks_take_alternate_batches_and_resume_anywhere(tmp_path):
    source = write_files(tmp_path, [7])
    second = stream(source, 2, shard=Shard(rank=1, world_size=2))
    assert [second.next()["label"].tolist() for _ in range(2)] == [[5, 8], [17, -1]]   # rows 2,3 and 6,0
    second.seek(3)
    assert second.next()["data"][:, 0].tolist() == [5, 6]


def test_shuffle_visits_every_row_once_per_pass_without_mixing_files(tmp_path):
    batches = stream(write_files(tmp_path, [4, 3]), 7, shuffle=True)
    passes = [batches.next()["data"][:, 0].tolist() for _ in range(3)]
    for rows in passes:
        assert sorted(rows) == list(range(7))
        in_first = [row < 4 for row in rows]
        assert in_first in ([True] * 4 + [False] * 3, [False] * 3 + [True] * 4)
    assert len({tuple(rows) for rows in passes}) > 1


def test_a_missing_dataset_names_the_file_and_the_top(tmp_path):
    source = write_files(tmp_path, [3])
    net = parse_net(layer(source, 2).replace('top: "label"', 'top: "target"'))
    with pytest.raises(UserError, match=r"part0\.h5 has no dataset 'target'.*it has: data, label"):
        infer_shapes(net)


def test_a_net_trains_from_hdf5_files_found_through_the_dataset_folder(tmp_path):
    write_files(tmp_path, [6, 6])
    net = parse_net(layer("list.txt", 4) + """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 1 weight_filler { type: "constant" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" top: "loss" }""")
    settings = parse_solver('type: "SGD" base_lr: 0.002 lr_policy: "fixed" momentum: 0.9 random_seed: 1 '
                            "max_iter: 60 display: 10")
    config = TrainConfig(solver=settings, net=net, device="cpu", dataset_root=tmp_path)
    result = train(config, tmp_path / "job")
    lines = (tmp_path / "job" / "metrics.jsonl").read_text().splitlines()
    losses = [json.loads(line)["loss"] for line in lines]
    assert losses[0] == pytest.approx(((3 * np.arange(4) - 1.0) ** 2).sum() / 8)   # the zero net, rows 0..3
    assert result.iterations == 60 and losses[-1] < 0.2 * losses[0]
