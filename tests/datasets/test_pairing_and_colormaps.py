"""Folder pairing, colour-map and class-name files, the default palette, the LMDB writer's growth."""
import multiprocessing

import numpy as np
import pytest

from digitslite.datasets.colormap import default_palette, read_class_names, read_colormap
from digitslite.datasets.lmdb_writer import LmdbWriter
from digitslite.datasets.pairing import pair_folders
from digitslite.datasets.problems import ProblemLog
from digitslite.errors import UserError
from tests.datasets.helpers import read_lmdb


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_pairs_match_relative_path_and_stem_whatever_the_extension(tmp_path):
    for name in ("images/a/1.jpg", "images/a/2.JPEG", "images/3.tif", "images/notes.txt",
                 "labels/a/1.png", "labels/a/2.png", "labels/3.png"):
        touch(tmp_path / name)
    problems = ProblemLog()

    pairs = pair_folders(tmp_path / "images", tmp_path / "labels", problems)

    assert [(pair.name, pair.image.name, pair.label.name) for pair in pairs] == [
        ("3", "3.tif", "3.png"), ("a/1", "1.jpg", "1.png"), ("a/2", "2.JPEG", "2.png")]
    assert problems.problems == []


def test_same_stem_in_another_folder_does_not_pair(tmp_path):
    touch(tmp_path / "images" / "a" / "1.png")
    touch(tmp_path / "labels" / "b" / "1.png")
    problems = ProblemLog()

    assert pair_folders(tmp_path / "images", tmp_path / "labels", problems) == []
    assert [(problem.kind, problem.count) for problem in problems.problems] == [
        ("unpaired_image", 1), ("unpaired_label", 1)]


def test_digits_colour_map_with_names_comments_and_blank_lines(tmp_path):
    (tmp_path / "map.txt").write_text("# class colours\n0 0 0 background\n\n128 0 0 road surface\n0 128 0\n")

    colormap = read_colormap(tmp_path / "map.txt")

    assert colormap.colours == ((0, 0, 0), (128, 0, 0), (0, 128, 0))
    assert colormap.names == ("background", "road surface", None)


def test_cvat_labelmap(tmp_path):
    (tmp_path / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:64,0,128::\n")

    colormap = read_colormap(tmp_path / "labelmap.txt")

    assert colormap.colours == ((0, 0, 0), (64, 0, 128)) and colormap.names == ("background", "car")


@pytest.mark.parametrize(("text", "expected"), [
    ("0 0 0\n1 2\n", "map.txt:2: expected 'R G B [name]'"),
    ("0 0 0\n5 5 5\n0 0 0 again\n", "map.txt:3: colour (0, 0, 0) is already class 0 (line 1)"),
    ("car:1,2::\n", "map.txt:1: expected CVAT 'name:R,G,B:parts:actions'"),
    ("# nothing\n", "the colour map lists no class"),
])
def test_bad_colour_maps_name_file_and_line(tmp_path, text, expected):
    (tmp_path / "map.txt").write_text(text)

    with pytest.raises(UserError) as raised:
        read_colormap(tmp_path / "map.txt")

    assert expected in str(raised.value)


def test_class_names_file_ignores_trailing_blank_lines_but_not_inner_ones(tmp_path):
    (tmp_path / "ok.txt").write_text("sky\nroad\n\n\n")
    (tmp_path / "gap.txt").write_text("sky\n\nroad\n")

    assert read_class_names(tmp_path / "ok.txt") == ["sky", "road"]
    with pytest.raises(UserError, match=r"gap.txt:2: empty line"):
        read_class_names(tmp_path / "gap.txt")


def test_default_palette_spreads_index_bits_over_the_channels():
    colours = default_palette(10)

    assert colours[:5] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128)]
    assert colours[8] == (64, 0, 0) and len(set(colours)) == 10


def test_lmdb_writer_grows_its_map_until_everything_fits(tmp_path):
    values = [np.random.default_rng(i).bytes(20_000) for i in range(40)]
    writer = LmdbWriter(tmp_path / "db", initial_map_size=64 * 1024)

    for index, value in enumerate(values):
        writer.put(b"%09d" % index, value)
    writer.flush()
    grown = writer.map_size
    writer.close()

    assert grown >= 800_000 and grown > 64 * 1024
    assert read_lmdb(tmp_path / "db") == [(b"%09d" % index, value) for index, value in enumerate(values)]


def write_records(path, first: int) -> None:
    """Write 30 records of 20 kB from a 64 kB map, committing every 3 (in a separate process)."""
    writer = LmdbWriter(path, initial_map_size=64 * 1024)
    for index in range(first, first + 30):
        writer.put(b"%09d" % index, np.random.default_rng(index).bytes(20_000))
        if index % 3 == 0:
            writer.flush()
    writer.close()


def test_processes_writing_one_lmdb_at_once_grow_its_map_together(tmp_path):
    context = multiprocessing.get_context("forkserver")
    processes = [context.Process(target=write_records, args=(tmp_path / "db", first)) for first in (0, 100)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)

    assert [process.exitcode for process in processes] == [0, 0]
    expected = [(b"%09d" % index, np.random.default_rng(index).bytes(20_000))
                for index in (*range(30), *range(100, 130))]
    assert read_lmdb(tmp_path / "db") == expected
