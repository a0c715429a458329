"""The procedural demo data: seeded, complete, hard for a majority guess, and a valid dataset source."""
import numpy as np
import pytest
from PIL import Image

from digitslite.datasets import DatasetOptions, create_dataset
from digitslite.datasets.colormap import read_class_names, read_colormap
from digitslite.datasets.demo import CLASS_COLOURS, CLASSES, write_demo
from digitslite.errors import UserError
from tests.datasets.helpers import read_lmdb


def label_arrays(folder):
    arrays = []
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as label:
            arrays.append(np.asarray(label))
    return arrays


def test_same_seed_gives_the_same_files_and_scene_i_does_not_depend_on_the_count(tmp_path):
    write_demo(tmp_path / "a", count=2, val_count=1, width=64, height=48, seed=7)
    write_demo(tmp_path / "b", count=3, val_count=1, width=64, height=48, seed=7)
    write_demo(tmp_path / "c", count=2, val_count=1, width=64, height=48, seed=8)

    for name in ("images/0000.jpg", "images/0001.jpg", "labels/0001.png", "val_labels_rgb/0000.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other_seed = (tmp_path / "c" / "labels/0000.png").read_bytes()
    assert (tmp_path / "a" / "labels/0000.png").read_bytes() != other_seed


def test_every_scene_holds_every_class_in_palette_and_matching_rgb_labels(tmp_path):
    write_demo(tmp_path / "demo", count=3, val_count=2, width=96, height=72, seed=1)
    demo = tmp_path / "demo"

    for prefix, count in (("", 3), ("val_", 2)):
        palette_labels = sorted((demo / f"{prefix}labels").glob("*.png"))
        assert len(palette_labels) == len(list((demo / f"{prefix}images").glob("*.jpg"))) == count
        for path in palette_labels:
            with Image.open(path) as label:
                assert label.mode == "P" and label.size == (96, 72)
                assert label.getpalette()[:30] == [channel for colour in CLASS_COLOURS for channel in colour]
                indices = np.asarray(label)
            assert sorted(np.unique(indices)) == list(range(len(CLASSES)))
            with Image.open(demo / f"{prefix}labels_rgb" / path.name) as rgb_label:
                rgb = np.asarray(rgb_label)
            assert np.array_equal(rgb, np.array(CLASS_COLOURS, np.uint8)[indices])
    colormap = read_colormap(demo / "colormap.txt")
    assert colormap.colours == CLASS_COLOURS and colormap.names == CLASSES
    assert read_class_names(demo / "classes.txt") == list(CLASSES)


def test_predicting_the_majority_class_scores_a_low_mean_iu(tmp_path):
    write_demo(tmp_path / "demo", count=12, val_count=0, seed=3)
    labels = label_arrays(tmp_path / "demo" / "labels")
    truth = np.concatenate([label.ravel() for label in labels]).astype(np.int64)
    classes = len(CLASSES)
    majority = np.bincount(truth, minlength=classes).argmax()
    predicted = np.full_like(truth, majority)

    pairs = truth * classes + predicted
    confusion = np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - np.diag(confusion)
    mean_iu = np.mean(np.diag(confusion)[union > 0] / union[union > 0])

    assert mean_iu < 0.2
    assert np.bincount(truth).max() / truth.size < 0.35  # no class dominates the pixels either


def test_palette_and_rgb_variants_build_the_same_dataset(tmp_path):
    write_demo(tmp_path / "demo", count=4, val_count=2, width=64, height=48)
    demo = tmp_path / "demo"
    common = {"images": demo / "images", "val_images": demo / "val_images", "seed": 4, "workers": 1}

    palette = create_dataset(DatasetOptions(labels=demo / "labels", val_labels=demo / "val_labels",
                                            classes=demo / "classes.txt", **common), tmp_path / "palette")
    rgb = create_dataset(DatasetOptions(labels=demo / "labels_rgb", val_labels=demo / "val_labels_rgb",
                                        label_mode="rgb", colormap=demo / "colormap.txt", **common),
                         tmp_path / "rgb")

    assert palette.info["classes"] == rgb.info["classes"] == list(CLASSES)
    assert palette.info["palette"] == rgb.info["palette"] == [list(colour) for colour in CLASS_COLOURS]
    for db in ("train_db/labels", "val_db/labels", "train_db/features"):
        assert read_lmdb(tmp_path / "palette" / db) == read_lmdb(tmp_path / "rgb" / db)


def test_existing_folder_is_refused(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mine.txt").write_text("keep")

    with pytest.raises(UserError, match="already exists"):
        write_demo(tmp_path / "demo", count=1, val_count=0)
    assert (tmp_path / "demo" / "mine.txt").read_text() == "keep"
