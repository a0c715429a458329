"""`digitslite surgery` end to end on small nets written into tmp_path."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import read_weights, write_caffemodel
from digitslite.cli import main

SRC = '''name: "src"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 4 } }
layer { name: "cls" type: "InnerProduct" bottom: "fc" top: "cls" inner_product_param { num_output: 3 } }
'''

DST = '''name: "dst"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 6 dim: 6 } } }
layer { name: "fc" type: "Convolution" bottom: "data" top: "fc"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "score" type: "Convolution" bottom: "fc" top: "score"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "up" type: "Deconvolution" bottom: "score" top: "up"
        convolution_param { num_output: 4 bias_term: false kernel_size: 4 stride: 2 } }
'''


@pytest.fixture
def files(tmp_path):
    """Paths of the source net, its weights and the destination net."""
    (tmp_path / "src.prototxt").write_text(SRC)
    (tmp_path / "dst.prototxt").write_text(DST)
    src_net = text_format.Parse(SRC, caffe_pb2.NetParameter())
    weights = {
        "fc": [np.arange(72, dtype=np.float32).reshape(4, 18), np.ones(4, np.float32)],
        "cls": [np.ones((3, 4), np.float32), np.zeros(3, np.float32)],
    }
    write_caffemodel(tmp_path / "src.caffemodel", src_net, weights)
    return tmp_path


def surgery_args(folder, *extra: str) -> list[str]:
    return ["surgery", "--src-net", str(folder / "src.prototxt"),
            "--src-weights", str(folder / "src.caffemodel"),
            "--dst-net", str(folder / "dst.prototxt"), "-o", str(folder / "dst.caffemodel"), *extra]


def test_json_report_and_written_weights(files):
    result = CliRunner().invoke(main, surgery_args(files, "--json"))

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"layers": [
        {"layer": "fc", "action": "coerced", "src_shape": [4, 18], "dst_shape": [4, 2, 3, 3]},
        {"layer": "score", "action": "left-initialised", "src_shape": None, "dst_shape": [4, 4, 1, 1]},
        {"layer": "up", "action": "interpolated", "src_shape": None, "dst_shape": [4, 4, 4, 4]},
        {"layer": "cls", "action": "dropped", "src_shape": [3, 4], "dst_shape": None},
    ]}
    weights = read_weights(files / "dst.caffemodel")
    assert sorted(weights) == ["fc", "up"]
    assert weights["fc"][0][3, 1, 2, 2] == 3 * 18 + 9 + 2 * 3 + 2
    # ungrouped 4 -> 4 deconvolution: bilinear (K=4: 0.25, 0.75, 0.75, 0.25) on the diagonal only
    assert weights["up"][0][2, 2, 1, 0] == 0.75 * 0.25
    assert weights["up"][0][2, 1, 1, 0] == 0


def test_interp_option_and_text_report(files):
    result = CliRunner().invoke(main, surgery_args(files, "--interp", "up"))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["fc", "coerced", "4x18", "->", "4x2x3x3"]
    assert lines[2].split() == ["up", "interpolated", "-", "->", "4x4x4x4"]
    assert lines[-1] == f"wrote {files / 'dst.caffemodel'}"


def test_uncoercible_shape_is_one_error_line_and_nothing_is_written(files):
    (files / "dst.prototxt").write_text(DST.replace("kernel_size: 3", "kernel_size: 2"))

    result = CliRunner().invoke(main, surgery_args(files))

    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith("error: ")
    assert "'fc'" in result.output and "(4, 18)" in result.output and "(4, 2, 2, 2)" in result.output
    assert not (files / "dst.caffemodel").exists()


def test_input_shape_sizes_a_destination_fed_by_a_data_layer(files):
    data_layer = 'layer { name: "image" type: "Data" top: "image" data_param { batch_size: 1 } }'
    dst = DST.splitlines()
    dst[1] = data_layer
    (files / "dst.prototxt").write_text("\n".join(dst).replace('bottom: "data"', 'bottom: "image"'))

    result = CliRunner().invoke(main, surgery_args(files, "--input-shape", "image=2,5,5", "--json"))

    assert result.exit_code == 0, result.output
    fc = json.loads(result.output)["layers"][0]
    assert fc == {"layer": "fc", "action": "coerced", "src_shape": [4, 18], "dst_shape": [4, 2, 3, 3]}


def test_input_shape_for_an_unknown_top_is_an_error(files):
    result = CliRunner().invoke(main, surgery_args(files, "--input-shape", "pixels=1,2,3,3"))

    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "'pixels'" in result.output and "inputs: data" in result.output


def test_malformed_input_shape_is_a_usage_error(files):
    result = CliRunner().invoke(main, surgery_args(files, "--input-shape", "data=1,x"))

    assert result.exit_code == 2
    assert "'data=1,x' is not [BLOB=]N,C,H,W" in result.output


def test_input_shape_must_name_the_blob_for_surgery(files):
    result = CliRunner().invoke(main, surgery_args(files, "--input-shape", "1,3,227,227"))

    assert result.exit_code == 2
    assert "name the blob" in result.output
