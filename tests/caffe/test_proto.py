"""caffe.proto is wire-compatible with Caffe, and the committed caffe_pb2.py is what protoc makes."""
import shutil
import subprocess
import sys

from digitslite.caffe import caffe_pb2


def test_committed_module_is_what_protoc_generates(repo_root, tmp_path):
    source = repo_root / "digitslite" / "caffe" / "caffe.proto"
    shutil.copy(source, tmp_path / "caffe.proto")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}",
                    f"--python_out={tmp_path}", "caffe.proto"], check=True)
    generated = (tmp_path / "caffe_pb2.py").read_text()
    committed = (repo_root / "digitslite" / "caffe" / "caffe_pb2.py").read_text()
    assert generated == committed, "run `make proto` after editing caffe.proto"


def test_field_numbers_match_caffe():
    layer = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    expected = {"name": 1, "type": 2, "bottom": 3, "top": 4, "loss_weight": 5, "param": 6,
                "blobs": 7, "include": 8, "exclude": 9, "phase": 10, "propagate_down": 11,
                "transform_param": 100, "loss_param": 101, "convolution_param": 106,
                "crop_param": 144, "batch_norm_param": 139, "input_param": 143, "clip_param": 148}
    assert {name: layer[name].number for name in expected} == expected
    net = caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name
    assert (net["layer"].number, net["layers"].number, net["input_dim"].number) == (100, 2, 4)
    solver = caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name
    assert (solver["type"].number, solver["iter_size"].number, solver["weights"].number) == (40, 36, 42)
    datum = caffe_pb2.Datum.DESCRIPTOR.fields_by_name
    assert [datum[n].number for n in ("channels", "height", "width", "data", "label", "encoded")] == \
        [1, 2, 3, 4, 5, 7]


def test_presence_and_defaults_follow_proto2():
    loss = caffe_pb2.LossParameter()
    assert not loss.HasField("ignore_label") and loss.normalization == loss.VALID
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
    assert caffe_pb2.SolverParameter().type == "SGD"


def test_packed_blob_data_matches_caffe_bytes():
    # BlobShape.dim [2, 3] packed: tag (1<<3)|2 = 0x0a, length 2, varints 2 and 3.
    assert caffe_pb2.BlobShape(dim=[2, 3]).SerializeToString() == b"\x0a\x02\x02\x03"
    # BlobProto.data [1.0] packed: tag (5<<3)|2 = 0x2a, length 4, little-endian float 1.0.
    assert caffe_pb2.BlobProto(data=[1.0]).SerializeToString() == b"\x2a\x04\x00\x00\x80\x3f"


def test_real_caffemodel_round_trips_byte_identically(peer):
    data = peer("mnistdeploy__lenet_iter_10000.caffemodel").read_bytes()
    net = caffe_pb2.NetParameter.FromString(data)
    assert net.SerializeToString() == data
