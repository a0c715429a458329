"""Every bad input is refused with a message naming the file and the fix, and leaves nothing behind."""
import json
import os
import signal
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from digitslite.datasets import (
    DatasetAbortedError,
    DatasetInvalidError,
    check_dataset,
    create_dataset,
)
from digitslite.errors import UserError
from tests.datasets.helpers import (
    COLOURS,
    datum,
    decoded,
    leftovers,
    make_folders,
    options_for,
    read_lmdb,
    save_image,
    save_palette_label,
    save_rgb_label,
    write_colormap,
)


def refused(root, **overrides) -> str:
    """Create into root/out expecting a refusal; check nothing is left; return the message."""
    out = root / "out"
    with pytest.raises(UserError) as raised:
        create_dataset(options_for(root, **overrides), out)
    assert not out.exists()
    assert leftovers(root) == []
    return str(raised.value)


@pytest.fixture
def folders(tmp_path):
    """Four good palette pairs (12x10, classes 0-2)."""
    return make_folders(tmp_path, 4)


def test_unreadable_image_is_named(tmp_path, folders):
    (tmp_path / "images" / "001.png").write_bytes(b"this is not an image")

    message = refused(tmp_path)

    assert "files that cannot be read" in message and "001.png" in message
    assert "replace the file or remove it" in message


def test_truncated_label_is_unreadable(tmp_path, folders):
    label = tmp_path / "labels" / "002.png"
    label.write_bytes(label.read_bytes()[:60])

    message = refused(tmp_path)

    assert "cannot be read" in message and "002.png" in message


def test_image_without_label_and_label_without_image_are_both_listed(tmp_path, folders):
    save_image(tmp_path / "images" / "extra.png", np.zeros((10, 12, 3), np.uint8))
    save_palette_label(tmp_path / "labels" / "sub" / "orphan.png", np.zeros((10, 12), np.uint8))

    with pytest.raises(DatasetInvalidError) as raised:
        create_dataset(options_for(tmp_path), tmp_path / "out")

    problems = {problem.kind: problem for problem in raised.value.report.problems}
    assert problems["unpaired_image"].examples == [
        f"{tmp_path}/images/extra.png (no {tmp_path}/labels/extra.*)"]
    assert problems["unpaired_label"].examples == [
        f"{tmp_path}/labels/sub/orphan.png (no {tmp_path}/images/sub/orphan.*)"]
    assert "images without a label" in str(raised.value) and "labels without an image" in str(raised.value)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_two_files_with_one_name_are_refused(tmp_path, folders):
    save_image(tmp_path / "images" / "001.jpg", np.zeros((10, 12, 3), np.uint8))

    message = refused(tmp_path)

    assert "sharing one relative name" in message and "001.jpg" in message


def test_label_of_another_size_names_both_sizes(tmp_path, folders):
    save_palette_label(tmp_path / "labels" / "003.png", np.zeros((10, 11), np.uint8))

    message = refused(tmp_path)

    assert f"{tmp_path}/labels/003.png is 11x10, {tmp_path}/images/003.png is 12x10" in message
    assert "save the label at exactly the image's width and height" in message


def test_rgba_label_is_refused(tmp_path, folders):
    Image.fromarray(np.zeros((10, 12, 4), np.uint8)).save(tmp_path / "labels" / "000.png")

    message = refused(tmp_path)

    assert "alpha channel" in message and "000.png (mode RGBA)" in message


def test_16_bit_label_is_refused(tmp_path, folders):
    Image.fromarray(np.zeros((10, 12), np.uint16)).save(tmp_path / "labels" / "000.png")

    message = refused(tmp_path, label_mode="index")

    assert "16-bit labels" in message and "000.png" in message and "8 bits per channel" in message


def png_16bit_rgb(width: int, height: int) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow itself would narrow it to 8 bits)."""
    rows = b"".join(b"\x00" + b"\x00\x01" * 3 * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_16_bit_rgb_label_is_refused_although_pillow_reads_it_as_8_bit(tmp_path):
    make_folders(tmp_path, 2, "rgb")
    (tmp_path / "labels" / "001.png").write_bytes(png_16bit_rgb(12, 10))

    message = refused(tmp_path, label_mode="rgb", colormap=write_colormap(tmp_path / "map.txt", COLOURS[:3]))

    assert "16-bit labels" in message and "001.png (mode RGB, 16 bits per channel)" in message


def test_index_outside_the_class_list_is_counted(tmp_path, folders):
    (tmp_path / "names.txt").write_text("sky\nroad\n")

    with pytest.raises(DatasetInvalidError) as raised:
        create_dataset(options_for(tmp_path, classes=tmp_path / "names.txt"), tmp_path / "out")

    pixels = int((folders["000"][1] == 2).sum())
    problem, = raised.value.report.problems
    assert problem.what == "class indices outside the class list" and problem.count == 4
    assert f"{tmp_path}/labels/000.png: {pixels} px of 2 (classes 0-1, ignore 255)" in problem.examples
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_class_without_training_pixels_is_refused_unless_allowed(tmp_path, folders):
    (tmp_path / "names.txt").write_text("sky\nroad\ncar\nbus\n")

    message = refused(tmp_path, classes=tmp_path / "names.txt")
    summary = create_dataset(options_for(tmp_path, classes=tmp_path / "names.txt", allow_empty_classes=True),
                             tmp_path / "ok")

    assert "classes without a single pixel in the training split" in message and "3 'bus'" in message
    assert summary.info["class_pixels"]["train"][3] == 0


def test_colour_missing_from_the_colour_map_lists_file_pixels_and_colour(tmp_path):
    written = make_folders(tmp_path, 3, "rgb")
    indices = written["001"][1]
    colours = np.array(COLOURS[:3], np.uint8)[indices]
    colours[0, 0] = colours[0, 1] = (9, 9, 9)
    Image.fromarray(colours).save(tmp_path / "labels" / "001.png")
    colormap = write_colormap(tmp_path / "map.txt", COLOURS[:3])

    message = refused(tmp_path, label_mode="rgb", colormap=colormap)

    assert "label colours that are not in the colour map" in message
    assert f"{tmp_path}/labels/001.png: 2 px of (9, 9, 9)" in message and "--nearest" in message


def test_nearest_maps_a_near_colour_to_its_class_with_a_warning(tmp_path):
    written = make_folders(tmp_path, 2, "rgb")
    indices = written["000"][1]
    colours = np.array(COLOURS[:3], np.uint8)[indices]
    colours[indices == 1] = (190, 40, 35)  # near class 1's (200, 30, 30)
    Image.fromarray(colours).save(tmp_path / "labels" / "000.png")

    colormap = write_colormap(tmp_path / "map.txt", COLOURS[:3])
    summary = create_dataset(options_for(tmp_path, label_mode="rgb", nearest=True, colormap=colormap),
                             tmp_path / "ds")

    assert [problem.kind for problem in summary.report.warnings] == ["nearest_colour"]
    stored = [decoded(datum(value)) for _, value in read_lmdb(tmp_path / "ds" / "train_db" / "labels")]
    assert any(np.array_equal(label, indices) for label in stored)


def test_differing_palettes_are_reconciled_by_colour_with_a_warning(tmp_path, folders):
    swapped = [COLOURS[0], COLOURS[2], COLOURS[1]]  # indices 1 and 2 exchange colours
    indices = folders["002"][1]
    repainted = np.choose(indices, [0, 2, 1]).astype(np.uint8)
    save_palette_label(tmp_path / "labels" / "002.png", repainted, swapped)

    summary = create_dataset(options_for(tmp_path), tmp_path / "ds")

    assert [problem.kind for problem in summary.report.warnings] == ["palette_remapped"]
    assert "002.png" in summary.report.warnings[0].examples[0]
    stored = [decoded(datum(value)) for _, value in read_lmdb(tmp_path / "ds" / "train_db" / "labels")]
    assert any(np.array_equal(label, indices) for label in stored)


def test_palette_colour_unknown_to_the_first_label_is_refused(tmp_path, folders):
    foreign = [COLOURS[0], (1, 2, 3), COLOURS[2]]
    save_palette_label(tmp_path / "labels" / "003.png", folders["003"][1], foreign)

    message = refused(tmp_path)

    assert "palette colours that the reference palette" in message
    assert "003.png: index 1 colour (1, 2, 3)" in message


def test_label_of_the_wrong_mode_suggests_the_right_label_mode(tmp_path):
    make_folders(tmp_path, 2, "rgb")

    message = refused(tmp_path)

    assert "is mode RGB, not read by --label-mode palette: use --label-mode rgb" in message


def test_parallel_workers_refuse_bad_folders_and_leave_nothing(tmp_path):
    make_folders(tmp_path, 12)
    (tmp_path / "images" / "004.png").write_bytes(b"broken")
    (tmp_path / "labels" / "009.png").write_bytes(b"broken too")

    message = refused(tmp_path, workers=2)

    assert "2 files that cannot be read as images" in message


def test_report_keeps_the_first_five_examples_and_counts_all(tmp_path):
    make_folders(tmp_path, 2)
    for index in range(7):
        save_image(tmp_path / "images" / f"lonely{index}.png", np.zeros((4, 4, 3), np.uint8))

    report = check_dataset(options_for(tmp_path))

    problem, = report.problems
    assert (problem.kind, problem.count, len(problem.examples)) == ("unpaired_image", 7, 5)
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["ok"] is False and as_json["problems"][0]["count"] == 7
    assert as_json["counts"] == {"train": 2, "val": 0}


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"label_mode": "rgb"}, "--label-mode rgb needs --colormap, a file of one"),
    ({"val_images": "somewhere"}, "--val-images and --val-labels go together"),
    ({"resize": "crop", "width": 10}, "--resize crop needs --height"),
    ({"images": "missing"}, "missing: --images must be an existing folder"),
    ({"label_mode": "index", "nearest": True}, "--nearest only applies to --label-mode rgb"),
])
def test_contradicting_options_are_refused_before_reading_images(tmp_path, folders, overrides, expected):
    assert expected in refused(tmp_path, **overrides)


def test_bad_colour_map_line_names_file_and_line(tmp_path, folders):
    (tmp_path / "map.txt").write_text("0 0 0 sky\n300 1 2 road\n")

    message = refused(tmp_path, label_mode="rgb", colormap=tmp_path / "map.txt")

    assert message.startswith(f"{tmp_path}/map.txt:2: colour value '300' is not an integer 0-255")


def test_existing_output_folder_is_not_touched(tmp_path, folders):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")

    with pytest.raises(UserError, match="already exists"):
        create_dataset(options_for(tmp_path), tmp_path / "out")

    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_dry_run_reports_without_writing(tmp_path, folders):
    report = check_dataset(options_for(tmp_path))

    assert report.ok and report.counts == {"train": 4, "val": 0}
    assert [stat.name for stat in report.classes] == ["class 0", "class 1", "class 2"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images", "labels"]


def test_interrupted_creation_leaves_nothing(tmp_path):
    make_folders(tmp_path, 6)

    def interrupt(done, total):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        create_dataset(options_for(tmp_path), tmp_path / "out", progress=interrupt)

    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
                    or threading.current_thread() is not threading.main_thread(),
                    reason="the test runner handles SIGTERM itself or runs tests off the main thread")
def test_sigterm_aborts_creation_and_leaves_nothing(tmp_path):
    make_folders(tmp_path, 6)

    def terminate(done, total):
        if done:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(DatasetAbortedError, match="aborted"):
        create_dataset(options_for(tmp_path), tmp_path / "out", progress=terminate)

    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_only_the_offending_label_is_named(tmp_path):
    written = make_folders(tmp_path, 2, "palette")
    save_rgb_label(tmp_path / "labels" / "000.png", written["000"][1])

    message = refused(tmp_path)

    assert "000.png is mode RGB" in message and "001.png" not in message
