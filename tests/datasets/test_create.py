"""Datasets built from generated folders read back exactly, in every label mode and encoding."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from digitslite.datasets import create_dataset
from digitslite.datasets.mean import read_mean_file
from tests.datasets.helpers import (
    COLOURS,
    IGNORE,
    datum,
    decoded,
    make_folders,
    options_for,
    read_lmdb,
    save_image,
    save_palette_label,
    sources_by_key,
    write_colormap,
)


def stored_records(dataset, stage="train"):
    """(source name, feature Datum, label Datum) per record, in key order."""
    names = sources_by_key(dataset, stage)
    features = read_lmdb(dataset / f"{stage}_db" / "features")
    labels = read_lmdb(dataset / f"{stage}_db" / "labels")
    keys = [b"%09d" % i for i in range(len(names))]
    assert [key for key, _ in features] == [key for key, _ in labels] == keys
    return [(names[key], datum(feature), datum(label))
            for (key, feature), (_, label) in zip(features, labels, strict=True)]


def assert_labels_exact(records, written):
    for name, _, label in records:
        assert label.encoded and (label.channels, label.height, label.width) == (1, 10, 12)
        with Image.open(io.BytesIO(label.data)) as image:
            assert image.mode == "L"
        assert np.array_equal(decoded(label), written[name][1])


@pytest.mark.parametrize("mode", ["palette", "rgb", "index"])
def test_each_label_mode_stores_the_exact_pixels_and_class_indices(tmp_path, mode):
    written = make_folders(tmp_path, 5, mode)
    colormap = None
    if mode == "rgb":
        colormap = write_colormap(tmp_path / "colours.txt", COLOURS[:3], ["sky", "road", "car"])

    summary = create_dataset(options_for(tmp_path, label_mode=mode, colormap=colormap), tmp_path / "ds")

    records = stored_records(tmp_path / "ds")
    assert sorted(name for name, _, _ in records) == sorted(written)
    for name, feature, _ in records:
        assert feature.encoded and (feature.channels, feature.height, feature.width) == (3, 10, 12)
        assert feature.label == 0
        assert np.array_equal(decoded(feature), written[name][0])
    assert_labels_exact(records, written)
    assert summary.info["counts"] == {"train": 5, "val": 0}


def test_dataset_json_holds_classes_palette_counts_and_pixel_frequencies(tmp_path):
    written = make_folders(tmp_path, 4, "palette", classes=3)
    (tmp_path / "names.txt").write_text("sky\nroad\ncar\n")

    create_dataset(options_for(tmp_path, classes=tmp_path / "names.txt"), tmp_path / "ds")

    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    counts = sum(np.bincount(indices.ravel(), minlength=3) for _, indices in written.values())
    assert info["classes"] == ["sky", "road", "car"]
    assert info["palette"] == [list(colour) for colour in COLOURS[:3]]
    assert info["class_pixels"]["train"] == counts.tolist()
    assert info["class_frequency"]["train"] == pytest.approx((counts / counts.sum()).tolist(), abs=1e-6)
    assert info["counts"] == {"train": 4, "val": 0}
    assert info["image_size"]["train"] == {"min": [12, 10], "max": [12, 10], "mean": [12.0, 10.0],
                                           "uniform": True}
    assert info["encoding"] == "png" and info["seed"] == 5
    assert info["sources"]["images"] == str(tmp_path / "images")
    assert info["databases"] == {"train": {"features": "train_db/features", "labels": "train_db/labels"}}


def test_raw_encoding_stores_chw_bgr_bytes_like_digits(tmp_path):
    written = make_folders(tmp_path, 3, "index")

    create_dataset(options_for(tmp_path, label_mode="index", encoding="none"), tmp_path / "ds")

    for name, feature, _ in stored_records(tmp_path / "ds"):
        assert not feature.encoded and (feature.channels, feature.height, feature.width) == (3, 10, 12)
        assert feature.data == written[name][0][:, :, ::-1].transpose(2, 0, 1).tobytes()


def test_jpg_encoding_stores_jpeg_close_to_the_source(tmp_path):
    ramp = np.linspace(0, 255, 48, dtype=np.uint8)
    smooth = np.stack([np.tile(ramp, (32, 1)), np.tile(ramp[::-1], (32, 1)), np.full((32, 48), 90, np.uint8)],
                      axis=-1)
    save_image(tmp_path / "images" / "a.png", smooth)
    stripes = (np.arange(32 * 48).reshape(32, 48) % 2).astype(np.uint8)
    save_palette_label(tmp_path / "labels" / "a.png", stripes)

    create_dataset(options_for(tmp_path, encoding="jpg"), tmp_path / "ds")

    (_, feature), = read_lmdb(tmp_path / "ds" / "train_db" / "features")
    stored = datum(feature)
    assert stored.encoded and stored.data[:2] == b"\xff\xd8"  # JPEG start-of-image marker
    assert np.abs(decoded(stored).astype(int) - smooth).mean() < 3


def test_val_percent_draws_a_seeded_split_and_records_the_seed(tmp_path):
    make_folders(tmp_path, 10)

    first = create_dataset(options_for(tmp_path, val_percent=30, seed=11), tmp_path / "a")
    second = create_dataset(options_for(tmp_path, val_percent=30, seed=11), tmp_path / "b")

    train, val = sources_by_key(tmp_path / "a", "train"), sources_by_key(tmp_path / "a", "val")
    assert (len(train), len(val)) == (7, 3)
    assert sorted([*train.values(), *val.values()]) == [f"{i:03d}" for i in range(10)]
    assert first.info["seed"] == 11 and first.info["options"]["val_percent"] == 30
    assert (tmp_path / "a" / "train.txt").read_text().replace(str(tmp_path / "a"), "") == \
        (tmp_path / "b" / "train.txt").read_text().replace(str(tmp_path / "b"), "")
    assert second.info["counts"] == {"train": 7, "val": 3}


def test_separate_validation_folders_fill_val_db(tmp_path):
    make_folders(tmp_path, 3)
    val_written = make_folders(tmp_path, 2, seed=9, prefix="val_")

    create_dataset(options_for(tmp_path, val_percent=None, val_images=tmp_path / "val_images",
                               val_labels=tmp_path / "val_labels"), tmp_path / "ds")

    records = stored_records(tmp_path / "ds", "val")
    assert [name for name, _, _ in records] == ["000", "001"]  # validation keeps name order
    assert_labels_exact(records, val_written)


def test_mean_binaryproto_is_the_bgr_mean_of_the_training_images(tmp_path):
    written = make_folders(tmp_path, 4)

    create_dataset(options_for(tmp_path), tmp_path / "ds")

    expected = np.mean([pixels.astype(np.float64) for pixels, _ in written.values()], axis=0)
    mean = read_mean_file(tmp_path / "ds" / "mean.binaryproto")
    assert mean.shape == (3, 10, 12)
    np.testing.assert_allclose(mean, expected[:, :, ::-1].transpose(2, 0, 1), atol=1e-4)


def test_no_mean_when_training_images_differ_in_size(tmp_path):
    make_folders(tmp_path, 2)
    rng = np.random.default_rng(1)
    save_image(tmp_path / "images" / "wide.png", rng.integers(0, 256, (10, 20, 3), dtype=np.uint8))
    save_palette_label(tmp_path / "labels" / "wide.png", rng.integers(0, 3, (10, 20), dtype=np.uint8))

    summary = create_dataset(options_for(tmp_path), tmp_path / "ds")

    assert summary.info["mean_file"] is None and not (tmp_path / "ds" / "mean.binaryproto").exists()
    assert summary.info["image_size"]["train"]["max"] == [20, 10]
    assert summary.info["image_size"]["train"]["uniform"] is False


def test_ignore_value_passes_through_and_is_not_a_class(tmp_path):
    written = make_folders(tmp_path, 2)
    indices = written["000"][1].copy()
    indices[4:6, 2:5] = IGNORE
    save_palette_label(tmp_path / "labels" / "000.png", indices)

    summary = create_dataset(options_for(tmp_path), tmp_path / "ds")

    stored = {name: decoded(label) for name, _, label in stored_records(tmp_path / "ds")}
    assert np.array_equal(stored["000"], indices)
    assert summary.info["ignored_pixels"]["train"] == 6
    assert len(summary.info["classes"]) == 3


def test_resize_fill_pads_labels_with_the_ignore_value(tmp_path):
    rng = np.random.default_rng(2)
    blocks = rng.integers(0, 3, (5, 10), dtype=np.uint8)
    blocks.flat[:3] = [0, 1, 2]
    save_image(tmp_path / "images" / "a.png", rng.integers(0, 256, (10, 20, 3), dtype=np.uint8))
    save_palette_label(tmp_path / "labels" / "a.png", np.kron(blocks, np.ones((2, 2), np.uint8)))

    summary = create_dataset(options_for(tmp_path, resize="fill", width=10, height=10), tmp_path / "ds")

    (_, feature, label), = stored_records_any(tmp_path / "ds")
    stored = decoded(label)
    assert (feature.width, feature.height) == (10, 10) and stored.shape == (10, 10)
    assert np.array_equal(stored[2:7], blocks)  # halved by nearest neighbour, centred
    assert (stored[:2] == IGNORE).all() and (stored[7:] == IGNORE).all()
    assert summary.info["ignored_pixels"]["train"] == 50
    assert summary.info["source_image_size"]["train"]["min"] == [20, 10]


def stored_records_any(dataset):
    features = read_lmdb(dataset / "train_db" / "features")
    labels = read_lmdb(dataset / "train_db" / "labels")
    return [(key, datum(feature), datum(label)) for (key, feature), (_, label) in zip(features, labels,
                                                                                        strict=True)]


def test_parallel_workers_write_the_same_records_as_one_process(tmp_path):
    make_folders(tmp_path, 24)
    calls = []

    create_dataset(options_for(tmp_path, val_percent=25, workers=1), tmp_path / "one")
    create_dataset(options_for(tmp_path, val_percent=25, workers=2), tmp_path / "two",
                   progress=lambda done, total: calls.append((done, total)))

    one, two = tmp_path / "one", tmp_path / "two"
    for db in ("train_db/features", "train_db/labels", "val_db/features", "val_db/labels"):
        assert read_lmdb(one / db) == read_lmdb(two / db)
    assert (one / "mean.binaryproto").read_bytes() == (two / "mean.binaryproto").read_bytes()
    assert calls[0] == (0, 24) and calls[-1] == (24, 24)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_labels_in_subfolders_pair_with_images_of_another_extension(tmp_path):
    rng = np.random.default_rng(3)
    pixels, indices = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8), np.zeros((10, 12), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.bmp")
    (tmp_path / "images" / "street").mkdir(parents=True)
    (tmp_path / "x.bmp").rename(tmp_path / "images" / "street" / "0001.bmp")
    save_palette_label(tmp_path / "labels" / "street" / "0001.png", indices)

    create_dataset(options_for(tmp_path), tmp_path / "ds")

    (_, feature, label), = stored_records_any(tmp_path / "ds")
    assert np.array_equal(decoded(feature), pixels) and np.array_equal(decoded(label), indices)
