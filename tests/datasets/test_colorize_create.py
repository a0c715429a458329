"""Colorization datasets from folders of colour photos: planes, bins, weights, grey and broken files."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from digitslite.caffe.caffemodel import read_blob_file
from digitslite.cli import main
from digitslite.datasets.colorize.create import check_colorize, create_colorize
from digitslite.datasets.colorize.options import ColorizeOptions
from digitslite.datasets.controls import as_fields
from digitslite.datasets.create import DatasetInvalidError
from digitslite.datasets.reader import close_readers
from digitslite.datasets.records import datum_array
from digitslite.engine.data import SegmentationLmdbDataset
from digitslite.errors import UserError
from tests.datasets.helpers import datum, leftovers, read_lmdb, save_image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
# stored Lab planes of the sRGB primaries: L * 2.55, round(a) + 128, round(b) + 128 (D65)
STORED = {RED: (136, 208, 195), GREEN: (224, 42, 211), BLUE: (82, 207, 20), WHITE: (255, 128, 128)}


def _solid(colour, width=6, height=4):
    return np.tile(np.array(colour, dtype=np.uint8), (height, width, 1))


@pytest.fixture
def photos(tmp_path):
    """train: a red photo, a half blue / half white one and a grey one; val: a green one."""
    half = _solid(BLUE)
    half[:, 3:] = WHITE
    save_image(tmp_path / "train" / "red.png", _solid(RED))
    save_image(tmp_path / "train" / "sub" / "half.png", half)
    save_image(tmp_path / "train" / "grey.png", _solid((120, 120, 120)))
    save_image(tmp_path / "val" / "green.png", _solid(GREEN))
    return tmp_path


def _options(root, **overrides):
    return ColorizeOptions(**({"images": root / "train", "val_images": root / "val", "seed": 7, "workers": 1}
                              | overrides))


def _records(dataset, stage, database):
    """Source file stem -> decoded record (the engine's view: C x H x W)."""
    stems = {line.split("\t")[0].encode(): line.split("\t")[1].rsplit("/", 1)[-1].split(".")[0]
             for line in (dataset / f"{stage}.txt").read_text().splitlines()}
    return {stems[key]: datum_array(value) for key, value in read_lmdb(dataset / f"{stage}_db" / database)}


def test_planes_labels_and_weights_of_a_lab_dataset(photos):
    summary = create_colorize(_options(photos), photos / "ds")
    dataset, info = summary.path, summary.info
    features, chroma = _records(dataset, "train", "features"), _records(dataset, "train", "chroma")
    assert sorted(features) == ["half", "red"]  # the grey photo is skipped
    assert (features["red"] == STORED[RED][0]).all() and features["red"].shape == (1, 4, 6)
    assert chroma["red"].shape == (2, 4, 6) and (chroma["red"][:, 0, 0] == STORED[RED][1:]).all()
    assert chroma["half"][:, 0, 0].tolist() == list(STORED[BLUE][1:])
    assert chroma["half"][:, 0, 5].tolist() == list(STORED[WHITE][1:])
    # paper bins: (0, 0) for white, (80, -110) for blue (79, -108), (80, 70) for red (80, 67)
    assert info["bins"]["centres"] == [[0, 0], [80, -110], [80, 70]]
    assert info["bins"]["pixels"] == [12, 12, 24]
    labels = _records(dataset, "train", "labels")
    assert (labels["red"] == 2).all() and labels["half"][0].tolist() == [[1, 1, 1, 0, 0, 0]] * 4
    # val green (-86, 83) was never seen: nearest kept bin is (0, 0) (14285 vs 27725 squared units)
    assert (_records(dataset, "val", "labels")["green"] == 0).all()
    # bins 80+ units apart: smoothing moves nothing; p = (1/4, 1/4, 1/2), w = (20/17, 20/17, 14/17)
    assert info["bins"]["distribution"] == pytest.approx([0.25, 0.25, 0.5])
    assert info["bins"]["weights"] == pytest.approx([20 / 17, 20 / 17, 14 / 17])
    infogain = read_blob_file(dataset / info["infogain_file"], "H", "")
    assert infogain.shape == (1, 1, 3, 3)
    assert infogain[0, 0] == pytest.approx(np.diag([20 / 17, 20 / 17, 14 / 17]))
    assert info["task"] == "colorization" and info["classes"] == ["a 0 b 0", "a 80 b -110", "a 80 b 70"]
    assert info["counts"] == {"train": 2, "val": 1} and info["found"] == {"train": 3, "val": 1}
    assert info["databases"]["train"] == {"features": "train_db/features", "chroma": "train_db/chroma",
                                          "labels": "train_db/labels"}
    assert info["mean_value"] == [pytest.approx((24 * 136 + 12 * 82 + 12 * 255) / 48)]
    grey = info["warnings"][0]
    assert grey["kind"] == "grey_image" and "grey.png" in grey["examples"][0]
    assert (dataset / info["histogram_file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fixed_grid_labels_need_16_bits(photos):
    info = create_colorize(_options(photos, bins="18x18"), photos / "ds").info
    assert info["bins"]["count"] == 324
    labels = _records(photos / "ds", "train", "labels")
    raw = read_lmdb(photos / "ds" / "train_db" / "labels")[0][1]
    assert datum(raw).channels == 1 and datum_array(raw).dtype == np.uint16
    # blue (79, -108): a column 15 (centre 79.4), b column 0 -> 270; red (80, 67) -> 15 * 18 + 14;
    # white (0, 0) lies halfway between columns 8 and 9 on both axes: the lower bin, 8 * 18 + 8
    assert labels["half"][0, 0].tolist() == [270, 270, 270, 152, 152, 152]
    assert (labels["red"] == 284).all()


def test_yuv_stores_y_and_uv_without_bins(photos):
    info = create_colorize(_options(photos, space="yuv"), photos / "ds").info
    assert info["bins"] is None and info["infogain_file"] is None and info["classes"] == []
    assert sorted(info["databases"]["train"]) == ["chroma", "features"]
    assert not (photos / "ds" / "train_db" / "labels").exists()
    red = _records(photos / "ds", "train", "features")["red"]
    assert (red == 76).all()  # Y = 0.299 -> round(76.2)
    assert info["colour_space"]["planes"] == ["Y", "U", "V"]


def test_two_workers_write_what_one_writes(photos):
    create_colorize(_options(photos), photos / "one")
    create_colorize(_options(photos, workers=2), photos / "two")
    for database in ("features", "chroma", "labels"):
        for stage in ("train", "val"):
            assert read_lmdb(photos / "one" / f"{stage}_db" / database) == \
                read_lmdb(photos / "two" / f"{stage}_db" / database)


def test_an_unreadable_photo_refuses_the_dataset_and_leaves_nothing(photos):
    (photos / "train" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetInvalidError) as caught:
        create_colorize(_options(photos), photos / "ds")
    assert "broken.jpg" in str(caught.value)
    assert not (photos / "ds").exists() and leftovers(photos) == []


def test_only_grey_photos_is_an_empty_training_split(tmp_path):
    save_image(tmp_path / "train" / "a.png", _solid((50, 50, 50)))
    report = check_colorize(ColorizeOptions(images=tmp_path / "train", val_percent=0, seed=1, workers=1))
    assert not report.ok
    assert [problem.kind for problem in report.errors] == ["empty_split"]
    assert report.to_dict()["histogram_picture"] is None
    # each interface in its own words: the command line's flag, the page's field
    assert "change --val-percent" in report.summary_line()
    assert "change the val_percent field" in report.summary_line(as_fields)


def test_check_reports_bins_and_the_histogram_picture(photos):
    report = check_colorize(_options(photos)).to_dict()
    assert report["ok"] and report["bins"]["count"] == 3
    assert report["histogram_picture"].startswith("data:image/png;base64,")
    assert not (photos / "ds").exists()


def test_cli_creates_a_colorization_dataset_and_refuses_label_flags(photos):
    result = CliRunner().invoke(main, ["dataset", "create", "--task", "colorization", "--images",
                                       str(photos / "train"), "--val-percent", "0", "--seed", "1",
                                       "--workers", "1", "--bins", "18x18", "-o", str(photos / "ds")])
    assert result.exit_code == 0, result.output
    assert "324 ab bins kept (18x18)" in result.output and "grey.png" in result.output
    assert json.loads((photos / "ds" / "dataset.json").read_text())["task"] == "colorization"
    refused = CliRunner().invoke(main, ["dataset", "create", "--task", "colorization", "--images",
                                        str(photos / "train"), "--labels", str(photos), "--dry-run"])
    assert refused.exit_code != 0 and "--labels does not apply to --task colorization" in refused.output


def test_a_link_out_of_the_allowed_folders_is_reported_not_read(photos, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    save_image(outside / "secret.png", _solid(RED))
    (photos / "train" / "secret.png").symlink_to(outside / "secret.png")
    report = check_colorize(_options(photos, within=(photos.resolve(),)))
    assert [problem.kind for problem in report.errors] == ["outside_roots"]
    assert "secret.png" in report.errors[0].examples[0]


def test_the_engine_reads_lightness_and_16_bit_bins(photos):
    create_colorize(_options(photos, bins="18x18"), photos / "ds")
    try:
        dataset = SegmentationLmdbDataset(photos / "ds" / "train_db")
        samples = [dataset[index] for index in range(len(dataset))]
    finally:
        close_readers()
    assert len(samples) == 2
    images = {int(image[0, 0, 0]): label for image, label in samples}
    assert set(images) == {STORED[RED][0], STORED[BLUE][0]}  # red and the half blue photo's first pixel
    assert images[STORED[RED][0]].dtype.is_floating_point is False
    assert (images[STORED[RED][0]] == 284).all()  # above 255: read as 16 bits


def test_an_output_folder_in_use_is_refused_before_the_photos_are_looked_at(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="the output folder already exists"):  # not: no such --images
        create_colorize(ColorizeOptions(images=tmp_path / "missing"), tmp_path / "ds")
    assert (tmp_path / "ds" / "keep.txt").read_text() == "mine"
