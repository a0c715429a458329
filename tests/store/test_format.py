"""info.json / master.json validation, checksums, and the embedded store (embedded_store/) itself."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import filter_net, read_net
from digitslite.modelstore.entries import add_to_master, entry_files, index_store, read_master
from digitslite.modelstore.format import (
    ChecksumError,
    FileRecord,
    StoreFormatError,
    is_plain_name,
    parse_info,
    parse_master,
    verify_file,
)
from digitslite.modelstore.listing import list_store
from digitslite.modelstore.locations import embedded_store_dir

SHA256 = "a" * 64


def minimal_info(**changes) -> dict:
    info = {"name": "m", "framework": "caffe", "model file": "deploy.prototxt",
            "files": {"deploy.prototxt": {"sha256": SHA256, "size": 3}}}
    info.update(changes)
    return info


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": None}, '"name" is missing'),
    ({"model file": None}, "no network is named"),
    ({"files": None}, '"files" is missing: the entry has no checksums'),
    ({"snapshot file": "w.caffemodel"}, """"snapshot file" names 'w.caffemodel', which "files" does not"""),
    ({"files": {"deploy.prototxt": {"size": 3}}}, "has no checksum"),
    ({"files": {"deploy.prototxt": {"sha256": "ABC"}}}, "sha256 is not 64 lower-case hex digits"),
    ({"files": {"../deploy.prototxt": {"sha256": SHA256}}}, "is not a plain file name"),
    ({"files": {"deploy.prototxt": {"sha1": "b" * 40, "url": "ftp://x/y"}}}, "url is not an http(s) URL"),
    ({"classes": ["a", "b"], "palette": [[0, 0, 0]]}, '"palette" has 1 colours for 2 classes'),
    ({"convolutionalize": {"classifier network file": "missing.prototxt"}}, '"convolutionalize" needs'),
])
def test_bad_info_is_refused_with_the_place_and_the_fix(changes, message):
    with pytest.raises(StoreFormatError) as error:
        parse_info(minimal_info(**changes), "http://store/m/info.json")
    assert str(error.value).startswith("http://store/m/info.json: ")
    assert message in str(error.value)
    assert "; " in str(error.value)


def test_master_children_must_be_plain_folder_names():
    assert parse_master({"msg": "hi", "children": ["a", "b-1"]}, "m").children == ["a", "b-1"]
    with pytest.raises(StoreFormatError, match=r"holds '\.\./etc', which is not a plain folder name"):
        parse_master({"children": ["../etc"]}, "m")


def test_every_digest_a_record_gives_is_verified(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    record = FileRecord("w.bin", {"sha256": hashlib.sha256(b"weights").hexdigest()}, size=7)
    sha1 = hashlib.sha1(b"other").hexdigest()
    verify_file(path, record, "here")
    with pytest.raises(ChecksumError, match="checksum mismatch: sha1 is"):
        verify_file(path, FileRecord("w.bin", {**record.digests, "sha1": sha1}), "here")
    with pytest.raises(ChecksumError, match="checksum mismatch: 7 bytes instead of the 8"):
        verify_file(path, FileRecord("w.bin", record.digests, size=8), "here")


def test_entry_files_keep_a_published_digest_while_it_still_matches(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"weights")
    sha1 = hashlib.sha1(b"weights").hexdigest()
    remote = FileRecord("big.caffemodel", {"sha1": "c" * 40}, url="http://host/big.caffemodel")
    records = entry_files(tmp_path, {"w.bin": FileRecord("w.bin", {"sha1": sha1}), "big.caffemodel": remote})
    assert set(records["w.bin"].digests) == {"sha1", "sha256"}
    assert records["big.caffemodel"] == remote
    (tmp_path / "w.bin").write_bytes(b"changed")
    changed = entry_files(tmp_path, {"w.bin": FileRecord("w.bin", {"sha1": sha1})})
    assert set(changed["w.bin"].digests) == {"sha256"}


def test_master_lists_each_entry_once(tmp_path):
    add_to_master(tmp_path, "a")
    add_to_master(tmp_path, "b")
    add_to_master(tmp_path, "a")
    assert read_master(tmp_path).children == ["a", "b"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["master.json"]


# ----------------------------------------------------------------------------------------------
# the embedded store


def test_embedded_store_lists_every_entry_without_errors():
    listing = list_store(str(embedded_store_dir()))
    assert listing.reachable, listing.error
    models = {model.id: model for model in listing.models}
    assert set(models) == {"fcn-alexnet", "fcn8s-voc", "bvlc_alexnet"}
    assert [model.error for model in models.values()] == [None, None, None]
    assert models["fcn8s-voc"].classes[0] == "background" and len(models["fcn8s-voc"].classes) == 21
    assert models["bvlc_alexnet"].task == "classification"
    assert {model.weights for model in models.values()} == {"remote"}


def test_embedded_checksums_match_the_files(tmp_path):
    store = embedded_store_dir()
    for entry in json.loads((store / "master.json").read_text())["children"]:
        info = parse_info(json.loads((store / entry / "info.json").read_text()), entry)
        for record in info.files.values():
            if record.url is None:
                verify_file(store / entry / record.name, record, entry)
            else:
                assert (store / entry / record.name).exists() is False


def test_embedded_weights_carry_the_published_sha1():
    store = embedded_store_dir()
    published = {"fcn8s-voc": ("http://dl.caffe.berkeleyvision.org/fcn8s-heavy-pascal.caffemodel",
                               "c449ea74dd7d83751d1357d6a8c323fcf4038962"),
                 "bvlc_alexnet": ("http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
                                  "9116a64c0fbe4459d18f4bb6b56d647b63920377"),
                 "fcn-alexnet": ("http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
                                 "9116a64c0fbe4459d18f4bb6b56d647b63920377")}
    for entry, (url, sha1) in published.items():
        info = parse_info(json.loads((store / entry / "info.json").read_text()), entry)
        weights = info.files[info.snapshot_file]
        assert (weights.url, weights.digests) == (url, {"sha1": sha1})


def _parameter_shapes(path: Path) -> dict:
    return {name: shapes for name, shapes in param_shapes(filter_net(read_net(path))).items() if shapes}


def test_embedded_fcn8s_deploy_fits_the_published_voc_fcn8s(peer):
    deploy = embedded_store_dir() / "fcn8s-voc" / "deploy.prototxt"
    assert _parameter_shapes(deploy) == _parameter_shapes(peer("fcn__voc-fcn8s__deploy.prototxt"))
    crops = [(layer.name, list(layer.crop_param.offset)) for layer in read_net(deploy).layer
             if layer.type == "Crop"]
    assert crops == [("score_pool4c", [5]), ("score_pool3c", [9]), ("score", [31])]


def test_embedded_alexnet_deploy_fits_bvlc_alexnet(peer):
    ours = embedded_store_dir() / "bvlc_alexnet" / "deploy.prototxt"
    assert _parameter_shapes(ours) == _parameter_shapes(peer("caffe__bvlc_alexnet__deploy.prototxt"))
    classifier = embedded_store_dir() / "fcn-alexnet" / "bvlc_alexnet.prototxt"
    assert classifier.read_bytes() == ours.read_bytes()


def test_embedded_fcn_alexnet_has_digits_crop_offset():
    deploy = read_net(embedded_store_dir() / "fcn-alexnet" / "deploy.prototxt")
    assert [list(layer.crop_param.offset) for layer in deploy.layer if layer.type == "Crop"] == [[18]]


def test_index_is_idempotent_on_the_embedded_store(tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(embedded_store_dir(), copy)
    index_store(copy)
    for path in sorted(embedded_store_dir().rglob("*.json")):
        relative = path.relative_to(embedded_store_dir())
        assert json.loads((copy / relative).read_text()) == json.loads(path.read_text()), relative
    assert not [path for path in copy.rglob(".*")], "index leaves no hidden files"


def test_only_plain_names_can_name_entries_and_files():
    assert is_plain_name("fcn8s-voc") and is_plain_name("bvlc_alexnet.caffemodel")
    assert not any(map(is_plain_name, ["", ".hidden", "a/b", "..", "a..b", "a b"]))
