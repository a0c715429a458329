"""The data-root rule for paths a request names directly and paths a net or solver names."""
import pytest

from digitslite.caffe import caffe_pb2
from digitslite.server.errors import ApiError
from digitslite.server.paths import check_named_paths, resolve_data_path


@pytest.fixture
def roots(tmp_path):
    root = (tmp_path / "data").resolve()
    (root / "images").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return (root,)


def test_a_folder_inside_a_root_resolves_and_one_outside_is_403_naming_the_field(roots, tmp_path):
    assert resolve_data_path("images", roots, "images") == roots[0] / "images"
    with pytest.raises(ApiError) as refused:
        resolve_data_path(str(tmp_path / "elsewhere"), roots, "images")
    assert refused.value.status == 403 and refused.value.field == "images"
    assert refused.value.message == (f"images: {tmp_path / 'elsewhere'} is outside the data roots "
                                     f"({roots[0]}); move the data under one of them or add its folder "
                                     "to DIGITSLITE_DATA_ROOTS")


def test_a_net_naming_an_absolute_path_outside_the_roots_is_403_naming_the_layer(roots, tmp_path):
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="data", type="Data")
    layer.data_param.source = str(roots[0] / "images")
    check_named_paths(net, roots, "network")  # inside: fine
    layer.transform_param.mean_file = str(tmp_path / "elsewhere" / "mean.binaryproto")
    with pytest.raises(ApiError) as refused:
        check_named_paths(net, roots, "network")
    assert refused.value.status == 403
    assert refused.value.message.startswith(
        f"network: layer 'data' transform_param.mean_file {tmp_path / 'elsewhere' / 'mean.binaryproto'} is "
        f"outside the data roots ({roots[0]}); move the file under one of them")


def test_a_relative_path_climbing_out_is_403(roots):
    net = caffe_pb2.NetParameter()
    net.layer.add(name="data", type="Data").data_param.source = "../train_db"
    with pytest.raises(ApiError, match="climbs out of the job's files"):
        check_named_paths(net, roots, "network")
