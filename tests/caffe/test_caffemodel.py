"""Reading, writing and matching .caffemodel weights (caffe-spec §5)."""
import numpy as np
import pytest

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import (
    WeightsError,
    array_to_blob,
    blob_to_array,
    match_weights,
    net_weights,
    read_caffemodel,
    read_weights,
    write_caffemodel,
)

LENET = "mnistdeploy__lenet_iter_10000.caffemodel"


def legacy_blob(num: int, channels: int, height: int, width: int, values) -> caffe_pb2.BlobProto:
    blob = caffe_pb2.BlobProto(num=num, channels=channels, height=height, width=width)
    blob.data.extend(values)
    return blob


def test_lenet_blobs_have_the_shapes_listed_in_the_manifest(peer):
    weights = read_weights(peer(LENET))

    shapes = {name: [array.shape for array in arrays] for name, arrays in weights.items()}
    assert shapes == {
        "conv1": [(20, 1, 5, 5), (20,)],
        "conv2": [(50, 20, 5, 5), (50,)],
        "ip1": [(500, 800), (500,)],
        "ip2": [(10, 500), (10,)],
    }
    assert all(array.dtype == np.float32 for arrays in weights.values() for array in arrays)


def test_lenet_round_trips_byte_identically(peer, tmp_path):
    original = peer(LENET)
    net = read_caffemodel(original)
    out = tmp_path / "copy.caffemodel"

    write_caffemodel(out, net, net_weights(net))

    assert out.read_bytes() == original.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["copy.caffemodel"]


def test_written_weights_replace_the_nets_blobs(peer, tmp_path):
    net = read_caffemodel(peer(LENET))
    new_ip2 = [np.arange(5000, dtype=np.float32).reshape(10, 500), np.full(10, -1.5, np.float32)]
    out = tmp_path / "ip2_only.caffemodel"

    write_caffemodel(out, net, {"ip2": new_ip2})

    weights = read_weights(out)
    assert list(weights) == ["ip2"]
    np.testing.assert_array_equal(weights["ip2"][0], new_ip2[0])
    np.testing.assert_array_equal(weights["ip2"][1], new_ip2[1])
    assert [layer.name for layer in read_caffemodel(out).layer] == [layer.name for layer in net.layer]


def test_weights_for_a_layer_the_net_lacks_are_refused_and_nothing_is_written(peer, tmp_path):
    net = read_caffemodel(peer(LENET))
    out = tmp_path / "bad.caffemodel"

    with pytest.raises(WeightsError, match="fc9"):
        write_caffemodel(out, net, {"fc9": [np.zeros(3, np.float32)]})
    assert list(tmp_path.iterdir()) == []


def test_legacy_4d_blob_is_read_as_four_axes():
    blob = legacy_blob(1, 1, 2, 3, [1, 2, 3, 4, 5, 6])

    array = blob_to_array(blob)

    assert array.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(array[0, 0], [[1, 2, 3], [4, 5, 6]])


def _fits(blob: caffe_pb2.BlobProto, shape: tuple[int, ...]) -> bool:
    """Whether loading a layer holding `blob` into a parameter of `shape` is accepted (Caffe's
    Blob::ShapeEquals, as CopyTrainedLayersFrom applies it)."""
    weights = caffe_pb2.NetParameter()
    weights.layer.add(name="ip").blobs.add().CopyFrom(blob)
    try:
        match_weights(weights, {"ip": [shape]})
    except WeightsError:
        return False
    return True


def test_legacy_shape_rule_pads_the_target_on_the_left():
    ip_weight = legacy_blob(1, 1, 2, 3, range(6))
    assert _fits(ip_weight, (2, 3))
    assert _fits(ip_weight, (1, 2, 3))
    assert _fits(ip_weight, (1, 1, 2, 3))
    assert not _fits(ip_weight, (3, 2))
    assert not _fits(ip_weight, (1, 1, 1, 2, 3))
    assert _fits(legacy_blob(1, 1, 1, 4, range(4)), (4,))

    modern = caffe_pb2.BlobProto()
    modern.shape.dim.extend([1, 1, 2, 3])
    modern.data.extend(range(6))
    assert _fits(modern, (1, 1, 2, 3))
    assert not _fits(modern, (2, 3))


def test_legacy_ip_blob_matches_a_2d_target_and_keeps_row_major_order():
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="ip", type="InnerProduct")
    layer.blobs.append(legacy_blob(1, 1, 2, 3, [1, 2, 3, 4, 5, 6]))
    layer.blobs.append(legacy_blob(1, 1, 1, 2, [7, 8]))

    report = match_weights(net, {"ip": [(2, 3), (2,)]})

    weight, bias = report.weights["ip"]
    np.testing.assert_array_equal(weight, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(bias, [7, 8])


def test_modern_blob_of_four_axes_does_not_match_by_the_legacy_rule():
    net = caffe_pb2.NetParameter()
    net.layer.add(name="ip").blobs.append(array_to_blob(np.zeros((1, 1, 2, 3), np.float32)))

    with pytest.raises(WeightsError, match=r"\(1, 1, 2, 3\).*\(2, 3\)"):
        match_weights(net, {"ip": [(2, 3)]})


def test_blob_without_any_shape_is_a_scalar():
    blob = caffe_pb2.BlobProto()
    blob.data.append(0.25)

    array = blob_to_array(blob)

    assert array.shape == ()
    assert array == np.float32(0.25)
    assert blob_to_array(array_to_blob(np.array(0.5, np.float32))).shape == ()


def test_double_data_is_preferred_when_present():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.append(2)
    blob.data.extend([1.0, 2.0])
    blob.double_data.extend([0.1, 4.5])

    array = blob_to_array(blob)

    assert array.dtype == np.float64
    assert array.tolist() == [0.1, 4.5]


def test_float64_arrays_are_written_as_double_data():
    values = np.array([0.1, 1e-300], np.float64)

    blob = array_to_blob(values)

    assert list(blob.double_data) == [0.1, 1e-300]
    assert len(blob.data) == 0
    assert blob_to_array(blob).tolist() == [0.1, 1e-300]


def test_array_to_blob_writes_packed_floats_and_blob_shape():
    array = np.arange(6, dtype=np.float32).reshape(2, 3) / 4

    blob = array_to_blob(array)

    expected = caffe_pb2.BlobProto()
    expected.shape.dim.extend([2, 3])
    expected.data.extend([0, 0.25, 0.5, 0.75, 1.0, 1.25])
    assert blob.SerializeToString() == expected.SerializeToString()
    # tag of field 5 with wire type 2 (length-delimited) = 0x2a, then 6 floats = 24 bytes
    assert b"\x2a\x18" in blob.SerializeToString()


def test_array_to_blob_legacy_form_pads_to_four_axes():
    blob = array_to_blob(np.ones((3, 4), np.float32), legacy_4d=True)

    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 1, 3, 4)
    assert not blob.HasField("shape")
    assert blob_to_array(blob).shape == (1, 1, 3, 4)


def test_blob_with_the_wrong_number_of_values_is_refused():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2, 2])
    blob.data.extend([1, 2, 3])

    with pytest.raises(WeightsError, match=r"3 values instead of 4"):
        blob_to_array(blob)


def test_shape_mismatch_names_layer_blob_shapes_and_fix():
    source = {"conv1": [np.zeros((20, 1, 5, 5), np.float32), np.zeros(20, np.float32)]}

    with pytest.raises(WeightsError) as caught:
        match_weights(source, {"conv1": [(10, 1, 5, 5), (10,)]}, source_name="lenet.caffemodel")

    message = str(caught.value)
    for part in ("lenet.caffemodel", "'conv1'", "blob 0", "(20, 1, 5, 5)", "(10, 1, 5, 5)", "rename"):
        assert part in message


def test_blob_count_mismatch_is_refused():
    source = {"conv1": [np.zeros((2, 1, 3, 3), np.float32), np.zeros(2, np.float32)]}

    with pytest.raises(WeightsError, match=r"'conv1' has 2 blobs .* 1 parameters"):
        match_weights(source, {"conv1": [(2, 1, 3, 3)]})


def test_match_reports_ignored_and_missing_layers(peer):
    net = read_caffemodel(peer(LENET))
    target = {
        "data": [],
        "conv1": [(20, 1, 5, 5), (20,)],
        "conv2": [(50, 20, 5, 5), (50,)],
        "ip1": [(500, 800), (500,)],
        "ip2_new": [(3, 500), (3,)],
        "prob": [],
    }

    report = match_weights(net, target)

    assert list(report.weights) == ["conv1", "conv2", "ip1"]
    assert report.ignored == ["ip2"]
    assert report.missing == ["ip2_new"]


def test_truncated_file_is_a_clear_error(peer, tmp_path):
    data = peer(LENET).read_bytes()
    truncated = tmp_path / "half.caffemodel"
    truncated.write_bytes(data[: len(data) // 2])

    with pytest.raises(WeightsError, match=r"half\.caffemodel: .*truncated"):
        read_caffemodel(truncated)


def test_text_prototxt_given_as_weights_is_a_clear_error(peer):
    with pytest.raises(WeightsError, match=r"mnist_deploy\.prototxt: not a binary \.caffemodel"):
        read_caffemodel(peer("mnistdeploy__mnist_deploy.prototxt"))


def test_empty_and_missing_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="holds no layers"):
        read_caffemodel(empty)
    with pytest.raises(WeightsError, match="cannot read"):
        read_caffemodel(tmp_path / "absent.caffemodel")


def test_v1_layers_model_is_upgraded(tmp_path):
    legacy = caffe_pb2.NetParameter(name="old")
    layer = legacy.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    layer.blobs.append(legacy_blob(1, 1, 2, 2, [1, 2, 3, 4]))
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(legacy.SerializeToString())

    net = read_caffemodel(path)

    assert len(net.layers) == 0
    assert [(layer.name, layer.type) for layer in net.layer] == [("ip", "InnerProduct")]
    np.testing.assert_array_equal(read_weights(path)["ip"][0], [[[[1, 2], [3, 4]]]])
