"""Pipeline partitioning of a Caffe net: costs, skip connections, balance and `net partition`."""
import json

import pytest
from click.testing import CliRunner

from digitslite.caffe.layer_cost import layer_costs
from digitslite.caffe.partition import partition
from digitslite.caffe.prototxt import filter_net, read_net
from digitslite.cli import main
from digitslite.errors import UserError

FCN8S = "fcn__voc-fcn8s__deploy.prototxt"
SHAPE = {"data": (1, 3, 512, 512)}
# VGG16's 13 convolutions 14,714,688; fc6 as a 7x7 convolution 7·7·512·4096 + 4096 = 102,764,544; fc7
# 4096·4096 + 4096 = 16,781,312; score_fr 4096·21 + 21, score_pool4 512·21 + 21, score_pool3
# 256·21 + 21; the three bias-free upsampling deconvolutions 21·21·4·4 (twice) and 21·21·16·16.
FCN8S_PARAMETERS = (14_714_688 + 102_764_544 + 16_781_312 + 86_037 + 10_773 + 5_397
                    + 2 * 21 * 21 * 4 * 4 + 21 * 21 * 16 * 16)


@pytest.fixture
def fcn8s(peer):
    return filter_net(read_net(peer(FCN8S)), "test")


def test_layer_costs_count_a_convolution_by_hand(fcn8s):
    costs = {cost.name: cost for cost in layer_costs(fcn8s, SHAPE)}
    # conv1_1: pad 100 makes 512 + 200 − 3 + 1 = 710; 64 outputs, each 3·3·3 multiply-adds
    assert costs["conv1_1"].flops == 2 * 64 * 710 * 710 * 27
    assert costs["conv1_1"].activation_bytes == 4 * 64 * 710 * 710
    assert costs["conv1_1"].parameters == 64 * 27 + 64
    assert costs["score"].flops == 0     # a Crop only moves values


def reads_are_satisfied(net, found) -> None:
    """Each stage reads only blobs it makes, receives or takes from its batch (net inputs), and sends
    what the next stage receives."""
    for stage in found.stages:
        available = set(stage.receives) | set(stage.inputs)
        for layer in net.layer[stage.start:stage.stop]:
            assert set(layer.bottom) <= available, (stage.index, layer.name)
            available.update(layer.top)
        assert set(stage.sends) <= available
    for before, after in zip(found.stages, found.stages[1:], strict=False):
        assert before.sends == after.receives


def test_named_cuts_pass_the_skip_connections_on(fcn8s):
    found = partition(fcn8s, cuts=["pool2", "pool4"], input_shapes=SHAPE)
    assert [stage.layers[-1] for stage in found.stages] == ["pool2", "pool4", "score"]
    # after pool4 the head still needs pool3 (score_pool3); data, the final Crop's reference, is a
    # net input, which each stage reads from its own batch
    assert [stage.sends for stage in found.stages] == [["pool2"], ["pool3", "pool4"], []]
    assert [stage.inputs for stage in found.stages] == [["data"], [], ["data"]]
    assert sum(stage.parameters for stage in found.stages) == FCN8S_PARAMETERS
    reads_are_satisfied(fcn8s, found)


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_balanced_cuts_minimise_the_largest_stage(fcn8s, stages):
    found = partition(fcn8s, stages, input_shapes=SHAPE)
    assert len(found.stages) == stages
    reads_are_satisfied(fcn8s, found)
    flops = [cost.flops for cost in layer_costs(fcn8s, SHAPE)]
    total = sum(flops)
    assert sum(stage.flops for stage in found.stages) == total
    largest = max(stage.flops for stage in found.stages)
    if stages == 2:    # every single cut, tried by hand: none has a smaller larger half
        candidates = [max(sum(flops[:bound]), sum(flops[bound:])) for bound in range(1, len(flops))]
        assert largest == min(candidates)
    assert largest < 1.25 * total / stages


def test_balancing_parameters_cuts_next_to_fc6(fcn8s):
    # fc6 holds 102.8 M of the 134.5 M values: with the convolutions before it (14.7 M) it is the
    # smallest larger half; with fc7 and the head (17.0 M) after it, it would be larger
    found = partition(fcn8s, 2, balance="parameters", input_shapes=SHAPE)
    assert [stage.parameters for stage in found.stages] == [14_714_688 + 102_764_544,
                                                            FCN8S_PARAMETERS - 14_714_688 - 102_764_544]
    assert found.stages[0].layers[-1] in ("fc6", "relu6", "drop6")
    reads_are_satisfied(fcn8s, found)


def test_bad_cuts_are_refused(fcn8s):
    with pytest.raises(UserError, match="pipeline cut 'pool9': the net has no such blob"):
        partition(fcn8s, cuts=["pool2", "pool9"], input_shapes=SHAPE)
    with pytest.raises(UserError, match="in the order the net computes them"):
        partition(fcn8s, cuts=["pool4", "pool2"], input_shapes=SHAPE)
    with pytest.raises(UserError, match="2 pipeline cuts make 3 stages, not 2"):
        partition(fcn8s, 2, cuts=["pool2", "pool4"], input_shapes=SHAPE)


def test_net_partition_prints_the_stages_and_json(peer):
    path = str(peer(FCN8S))
    table = CliRunner().invoke(main, ["net", "partition", path, "--stages", "2",
                                      "--input-shape", "1,3,512,512"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["stage", "layers"] and len(lines) == 4
    # the cut after pool3: at 512, pad 100 makes 710, the pools 355, 178 and 89; 256 x 89 x 89 float32
    assert lines[1].endswith(f"pool3 ({256 * 89 * 89 * 4 / 2**20:.1f} MiB)")
    assert lines[3] == "Each stage reads the net inputs it needs (data) from its own batch."
    report = CliRunner().invoke(main, ["net", "partition", path, "--pipeline-cuts", "pool4", "--json",
                                       "--input-shape", "1,3,512,512"])
    document = json.loads(report.stdout)
    assert document["cuts"] == [["pool3", "pool4"]]
    assert [stage["inputs"] for stage in document["stages"]] == [["data"], ["data"]]
    assert [stage["layers"][-1] for stage in document["stages"]] == ["pool4", "score"]
    missing = CliRunner().invoke(main, ["net", "partition", path])
    assert missing.exit_code == 2 and "--stages K or --pipeline-cuts" in missing.stderr
