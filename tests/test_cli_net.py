"""`digitslite net shapes | table | crops | check`, through the real command line group."""
import json
import re

import pytest
from click.testing import CliRunner

from digitslite.caffe.prototxt import read_net
from digitslite.cli import main

FCN8S = "fcn__voc-fcn8s__deploy.prototxt"
FCN_ALEXNET = "digits__semantic-segmentation__fcn_alexnet.prototxt"


def _run(*args: str):
    return CliRunner().invoke(main, ["net", *map(str, args)])


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# ---- shapes

def test_shapes_json_for_lenet(peer):
    result = _run("shapes", peer("caffe__mnist__lenet.prototxt"), "--json")
    assert result.exit_code == 0, result.output
    blobs = json.loads(result.stdout)["blobs"]
    # Input 64x1x28x28; conv 28-5+1 = 24; pool 12; conv 8; pool 4
    assert blobs["conv1"] == [64, 20, 24, 24]
    assert blobs["pool2"] == [64, 50, 4, 4]
    assert blobs["prob"] == [64, 10]


def test_shapes_takes_an_input_shape_with_or_without_a_name(peer):
    for option in ("1,1,32,32", "data=1,1,32,32"):
        result = _run("shapes", peer("caffe__mnist__lenet.prototxt"), "--input-shape", option, "--json")
        assert json.loads(result.stdout)["blobs"]["pool2"] == [1, 50, 5, 5]  # 32-4=28, 14, 10, 5


def test_shapes_table_for_humans(peer):
    result = _run("shapes", peer("caffe__mnist__lenet.prototxt"))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split() == ["data", "64x1x28x28"]


def test_shapes_of_train_phase_with_stage(peer):
    # the val stage keeps the Accuracy layer; data 3x500x356 from the caller, label derived 1x1x500x356
    result = _run("shapes", peer(FCN_ALEXNET), "--phase", "test", "--stage", "val", "--input-shape",
                  "3,500,356", "--json")
    blobs = json.loads(result.stdout)["blobs"]
    assert blobs["data"] == [1, 3, 500, 356]
    assert blobs["label"] == [1, 1, 500, 356]
    assert blobs["score"] == [1, 21, 500, 356]
    assert blobs["accuracy"] == []


def test_bad_input_shape_option_is_a_usage_error(peer):
    result = _run("shapes", peer("caffe__mnist__lenet.prototxt"), "--input-shape", "1,x,28,28")
    assert result.exit_code == 2
    assert "[BLOB=]N,C,H,W" in result.output


# ---- table

def test_table_json_reproduces_table_2(peer):
    result = _run("table", peer(FCN_ALEXNET), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    first, last = report["rows"][0], report["rows"][-1]
    assert first == {"layer": "conv1", "type": "Convolution", "stride": 4, "pad": 100, "kernel": 11,
                     "scale": "1/4", "cumulative_scale": "1/4", "offset": 23.75, "cumulative_offset": 18}
    assert last == {"layer": "upscore", "type": "Deconvolution", "stride": 32, "pad": 0, "kernel": 63,
                    "scale": "32", "cumulative_scale": "1", "offset": 31, "cumulative_offset": 31}
    pool5 = next(row for row in report["rows"] if row["layer"] == "pool5")
    assert (pool5["cumulative_scale"], pool5["offset"], pool5["cumulative_offset"]) == ("1/32", -0.5, -65)
    assert report["crop_offset"] == 18


def test_table_between_chosen_blobs(peer):
    result = _run("table", peer(FCN8S), "--from", "data", "--to", "pool5", "--json")
    report = json.loads(result.stdout)
    assert report["rows"][-1]["cumulative_scale"] == "1/32"
    assert report["rows"][0]["cumulative_offset"] == 2.609375  # fcn-reference §c
    assert report["crop_offset"] is None


def test_table_text_ends_with_the_crop_offset(peer):
    result = _run("table", peer(FCN8S))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "crop offset: 31"


def test_table_without_a_crop_or_a_target_explains(peer):
    line = _one_line_error(_run("table", peer("caffe__bvlc_alexnet__deploy.prototxt")))
    assert "no Crop layer" in line and "--to" in line


# ---- crops

def test_crops_json(peer):
    result = _run("crops", peer(FCN8S), "--json")
    assert json.loads(result.stdout) == {"crops": [
        {"layer": "score_pool4c", "written": [5], "derived": [5], "ok": True},
        {"layer": "score_pool3c", "written": [9], "derived": [9], "ok": True},
        {"layer": "score", "written": [31], "derived": [31], "ok": True}]}


@pytest.fixture
def broken_fcn8s(peer, tmp_path):
    """FCN-8s deploy with score_pool4c's offset removed and score's written as 30."""
    text = peer(FCN8S).read_text()
    text = text.replace("offset: 5\n", "", 1).replace("offset: 31", "offset: 30")
    path = tmp_path / "broken.prototxt"
    path.write_text(text)
    return path


def test_crops_flags_missing_and_wrong_offsets(broken_fcn8s):
    result = _run("crops", broken_fcn8s)
    assert result.exit_code == 0
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["score_pool4c", "written", "-", "derived", "5", "missing"],
        ["score_pool3c", "written", "9", "derived", "9", "ok"],
        ["score", "written", "30", "derived", "31", "WRONG"]]


def test_crops_fix_writes_a_corrected_copy(broken_fcn8s, tmp_path):
    out = tmp_path / "fixed.prototxt"
    result = _run("crops", broken_fcn8s, "--fix", "-o", out)
    assert result.exit_code == 0, result.output
    assert "2 offset(s) filled or corrected" in result.stdout
    fixed = read_net(out)
    offsets = [list(layer.crop_param.offset) for layer in fixed.layer if layer.type == "Crop"]
    assert offsets == [[5], [9], [31]]
    assert {path.name for path in tmp_path.iterdir()} == {"broken.prototxt", "fixed.prototxt"}
    assert _run("check", out).exit_code == 0


def test_crops_fix_needs_an_output(broken_fcn8s):
    assert _run("crops", broken_fcn8s, "--fix").exit_code == 2


# ---- check

def test_check_verdict_line(peer):
    result = _run("check", peer(FCN8S))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: ")
    assert "47 layers (test)" in result.stdout
    assert "3 Crop offset(s) match the coordinate map" in result.stdout
    assert "outputs: score 1x21x500x500" in result.stdout


def test_check_refuses_a_wrong_crop_offset(broken_fcn8s):
    line = _one_line_error(_run("check", broken_fcn8s))
    assert f"{broken_fcn8s}:" in line
    assert "layer 'score_pool4c' (Crop) has offset none (read as 0) but the coordinate map gives 5" in line
    assert "net crops" in line and "--fix" in line


def test_check_takes_a_solver_file_as_a_solver_and_checks_the_nets_it_names(peer, tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text(peer("fcn__voc-fcn8s__solver.prototxt").read_text())
    (tmp_path / "train.prototxt").write_text(peer("fcn__voc-fcn8s__train.prototxt").read_text())
    result = _run("check", solver)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"OK: {solver}: solver SGD, lr_policy fixed, max_iter 100000; nets: ")
    assert f"{tmp_path / 'train.prototxt'} (train) 50 layers" in result.stdout
    assert "its net 'val.prototxt' is not found" in result.stderr


def test_check_refuses_a_solver_field_out_of_range_by_its_name(peer, tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "x.prototxt" base_lr: 0.01 lr_policy: "exp" gamma: -0.9')
    line = _one_line_error(_run("check", solver))
    assert f'{solver}: lr_policy "exp" needs gamma >= 0 (it is -0.9' in line


# Every peer network file, with what `net check` must say about it. Data layers read their images at
# run time: checked for structure, or with the caller's shape; DIGITS' standard networks leave
# num_output for DIGITS to fill; L1Loss is NVcaffe-only.
PEER_VERDICTS = {
    "caffe__bvlc_alexnet__deploy.prototxt": ((), "OK"),
    "caffe__bvlc_alexnet__train_val.prototxt": (("--input-shape", "3,256,256"), "OK"),
    "caffe__mnist__lenet.prototxt": ((), "OK"),
    "caffe__mnist__lenet_train_test.prototxt": (("--input-shape", "1,28,28"), "OK"),
    "digits__binary-segmentation__segmentation-model.prototxt":
        (("--input-shape", "3,32,32"),
         "layer 'lossL1' has type 'L1Loss', which digitslite does not run: it is NVIDIA Caffe's fork layer"),
    "digits__semantic-segmentation__fcn_alexnet.deploy.prototxt": ((), "OK"),
    "digits__semantic-segmentation__fcn_alexnet.prototxt": (("--stage", "val", "--input-shape", "3,500,356"),
                                                            "OK"),
    "digits__standard-networks__caffe__alexnet.prototxt":
        (("--input-shape", "3,256,256", "--classes", "5"), "OK"),
    "digits__standard-networks__caffe__lenet.prototxt":
        (("--input-shape", "1,28,28", "--classes", "10"), "OK"),
    "fcn__voc-fcn-alexnet__train.prototxt": (("--input-shape", "1,3,500,500"), "OK"),
    "fcn__voc-fcn-alexnet__val.prototxt": (("--input-shape", "1,3,500,500"), "OK"),
    "fcn__voc-fcn16s__train.prototxt": (("--input-shape", "1,3,500,500"), "OK"),
    "fcn__voc-fcn32s__train.prototxt": (("--input-shape", "1,3,500,500"), "OK"),
    "fcn__voc-fcn8s__deploy.prototxt": ((), "OK"),
    "fcn__voc-fcn8s__train.prototxt": (("--input-shape", "1,3,500,500"), "OK"),
    "fcn__voc-fcn8s__val.prototxt": (("--input-shape", "1,3,500,500"), "OK"),
    "mnistdeploy__mnist_deploy.prototxt": ((), "OK"),
}


def test_every_peer_network_has_a_verdict(peer):
    folder = peer("MANIFEST.md").parent
    nets = {path.name for path in folder.glob("*.prototxt") if "solver" not in path.name}
    assert nets == set(PEER_VERDICTS)


@pytest.mark.parametrize("name", sorted(PEER_VERDICTS))
def test_net_check_on_every_peer_network(peer, name):
    args, verdict = PEER_VERDICTS[name]
    result = _run("check", peer(name), *args)
    if verdict == "OK":
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"OK: {peer(name)}: ")
        assert "structure only" not in result.stdout
    else:
        assert verdict in _one_line_error(result)


def test_every_peer_prototxt_checks_or_is_refused_for_a_named_layer(peer):
    """Issue 12's acceptance: with no options at all, each file passes `net check` or is refused for a
    named unsupported layer type (or a Python layer that is not a known data layer)."""
    refusal = re.compile(r"layer '[^']+' (has type '[^']+', which digitslite does not (support|run)|"
                         r"is a Python layer \([\w.]+\), which digitslite does not run)")
    for path in sorted(peer("MANIFEST.md").parent.glob("*.prototxt")):
        result = _run("check", path)
        if result.exit_code == 0:
            assert result.stdout.startswith(f"OK: {path}: "), result.output
        else:
            assert refusal.search(_one_line_error(result)), (path.name, result.output)


@pytest.mark.parametrize("name", sorted(name for name in PEER_VERDICTS if name.startswith("fcn__")
                                        and "deploy" not in name))
def test_fcn_python_data_layers_check_for_structure_with_a_note(peer, name):
    result = _run("check", peer(name))
    assert result.exit_code == 0, result.output
    assert "structure only (shapes not checked)" in result.stdout
    assert "layer 'data' (Python) reads its images when it runs" in result.stderr
    assert "--input-shape" in result.stderr and "--dataset" in result.stderr


# ---- nets Caffe runs that the coordinate map cannot align (RetinaFace's Crop with the default offset 0)

HALF_PIXEL = """name: "halfpixel"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 100 dim: 100 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 1 kernel_size: 2 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "pool" top: "up"
  convolution_param { num_output: 1 kernel_size: 4 stride: 2 } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "crop" }
"""


def test_a_crop_without_a_whole_derived_offset_is_a_warning_never_a_refusal(tmp_path):
    path = tmp_path / "half.prototxt"
    path.write_text(HALF_PIXEL)
    result = _run("check", path)
    assert result.exit_code == 0, result.output
    # conv k2: 100 -> 99, pool: 50, deconv k4 s2: 102, cropped at Caffe's default offset 0 to 100
    assert "outputs: crop 1x1x100x100" in result.stdout
    assert "1 Crop offset(s) cannot be derived (warning)" in result.stdout
    assert "warning:" in result.stderr
    assert "layer 'crop' (Crop) crops at offset 0 (the default)" in result.stderr
    assert "not a whole number" in result.stderr
    crops = json.loads(_run("crops", path, "--json").stdout)["crops"]
    assert [(crop["written"], crop["derived"], crop["ok"]) for crop in crops] == [(None, None, True)]
    fixed = tmp_path / "fixed.prototxt"
    assert _run("crops", path, "--fix", "-o", fixed).exit_code == 0
    assert fixed.read_text() == HALF_PIXEL, "nothing is derived, so nothing is written"


def test_crops_fix_keeps_comments_and_layout(broken_fcn8s, tmp_path):
    text = "# my FCN-8s, with a comment the fix must keep\n" + broken_fcn8s.read_text()
    broken_fcn8s.write_text(text)
    out = tmp_path / "fixed.prototxt"
    assert _run("crops", broken_fcn8s, "--fix", "-o", out).exit_code == 0
    fixed = out.read_text()
    assert fixed.startswith("# my FCN-8s, with a comment the fix must keep\n")
    assert fixed.count("#") == text.count("#")
    assert len(fixed.splitlines()) == len(text.splitlines()) + 1   # one offset line added, one replaced


# ---- template fields, class counts and ignore values (issue 13 items 4, 15, 17)

def test_a_template_field_names_the_flag_that_fills_it(repo_root):
    standard = repo_root / "digitslite" / "network_defs" / "fcn_alexnet" / "network.prototxt"
    for command in ("check", "shapes", "table", "crops"):
        line = _one_line_error(_run(command, standard))
        assert "template field {{num_classes}}" in line and "--classes N or --dataset DIR" in line, command
        assert f"{standard}:" in line
    result = _run("check", standard, "--classes", "21", "--input-shape", "3,500,500")
    assert result.exit_code == 0, result.output
    assert "1 Crop offset(s) derived from the coordinate map when it trains" in result.stdout   # none written
    shapes = json.loads(_run("shapes", standard, "--classes", "4", "--input-shape", "3,500,500",
                             "--json").stdout)
    assert shapes["blobs"]["score"] == [1, 4, 500, 500]


def test_a_classifier_scoring_other_classes_than_the_dataset_is_refused_with_the_fix(peer):
    line = _one_line_error(_run("check", peer(FCN_ALEXNET), "--input-shape", "3,500,356", "--classes", "5"))
    assert "layer 'loss' (SoftmaxWithLoss) gets scores for 21 classes but the dataset has 5" in line
    # every per-pixel classifier layer of 21 outputs on the way to the loss
    assert ("set num_output (and group, where it is 21) of 'score_fr', 'upscore' to 5, or write "
            "{{num_classes}} there") in line
    assert _run("check", peer(FCN_ALEXNET), "--input-shape", "3,500,356", "--classes", "21").exit_code == 0


def _dataset_json(folder, classes: int, ignore: int):
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({
        "classes": [f"c{index}" for index in range(classes)], "ignore_label": ignore,
        "image_size": {"train": {"max": [356, 500]}}}))
    return folder


def test_a_dataset_gives_the_check_its_classes_shape_and_ignore_value(peer, tmp_path):
    matching = _dataset_json(tmp_path / "voc", 21, 255)
    result = _run("check", peer(FCN_ALEXNET), "--dataset", matching)
    assert result.exit_code == 0, result.output
    assert "outputs: accuracy scalar, loss scalar" in result.stdout      # shapes from the dataset's size
    camvid = _dataset_json(tmp_path / "camvid", 21, 11)
    line = _one_line_error(_run("check", peer(FCN_ALEXNET), "--dataset", camvid))
    assert "layer 'loss' (SoftmaxWithLoss) ignores label 255 but the dataset marks void pixels with 11" \
        in line
    assert "set ignore_label: 11" in line


def test_digits_standard_networks_check_as_digits_builds_them(peer):
    lenet = peer("digits__standard-networks__caffe__lenet.prototxt")
    result = _run("check", lenet, "--input-shape", "1,28,28", "--classes", "10")
    assert result.exit_code == 0, result.output
    # the val stage's Data layer (batch 32) and ip2's num_output filled with the class count
    assert "DIGITS-style network, 11 layers (test, stage val)" in result.stdout
    assert "DIGITS supplies: data 32x1x28x28, label 32" in result.stdout
    assert "num_output of ip2 is the class count, as DIGITS fills it" in result.stderr
    train = _run("shapes", lenet, "--phase", "train", "--input-shape", "1,28,28", "--classes", "10", "--json")
    blobs = json.loads(train.stdout)["blobs"]
    assert blobs["data"] == [64, 1, 28, 28] and blobs["ip2"] == [64, 10]   # stage train: batch 64


def test_check_takes_the_nets_a_solver_holds(tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text('base_lr: 0.01 lr_policy: "fixed" max_iter: 5 net_param { ' + HALF_PIXEL + " }")
    result = _run("check", solver)
    assert result.exit_code == 0, result.output
    assert f"nets: {solver} net_param (train) 5 layers, {solver} net_param (test) 5 layers" in result.stdout
    assert "layer 'crop' (Crop) crops at offset 0" in result.stderr


def test_check_json_holds_the_report(tmp_path):
    path = tmp_path / "half.prototxt"
    path.write_text(HALF_PIXEL)
    report = json.loads(_run("check", path, "--json").stdout)
    assert (report["layers"], report["inputs"], report["outputs"]) == (5, ["data"], ["crop"])
    assert report["blobs"]["up"] == [1, 1, 102, 102] and report["crops"][0]["derived"] is None
    assert len(report["warnings"]) == 1 and report["digits_style"] is False
