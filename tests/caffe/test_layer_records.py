"""The layer records are the one table of layer types: every other place derives from them, none
keeps a list of its own, and docs/LAYERS.md is what the records generate."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import digitslite
from digitslite.caffe import caffe_pb2, layerdoc
from digitslite.caffe.coordmap import IDENTITY, layer_map
from digitslite.caffe.deploy import DATA_TYPES
from digitslite.caffe.footprint import IDENTITY as PIXEL
from digitslite.caffe.geometry import RuleError
from digitslite.caffe.layers import LAYER_TYPES, Coord, Source
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.shapes import ShapeError, infer_shapes, is_source
from digitslite.caffe.upgrade import V1_TYPE_NAMES
from digitslite.engine.layers import LAYERS
from digitslite.viz.netgraph import layout

# python/caffe/coord_map.py: the types whose coordinate map is the identity (a fact of Caffe's).
CAFFE_PASS_THROUGH = {"AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN",
                      "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH",
                      "Threshold"}
PACKAGE = Path(digitslite.__file__).parent


def _layer(type_name: str, **fields) -> caffe_pb2.LayerParameter:
    return caffe_pb2.LayerParameter(name=type_name.lower(), type=type_name, **fields)


def test_the_engine_implements_exactly_the_computing_records():
    """Sources feed the net and Split is autograd fan-out in engine/net.py; every other record
    has an engine layer, and no engine layer lacks a record."""
    computing = {name for name, record in LAYER_TYPES.items() if record.source is Source.NONE}
    assert set(LAYERS) == computing - {"Split"}
    assert {name for name, cls in LAYERS.items() if cls.is_loss} == {
        name for name, record in LAYER_TYPES.items() if record.loss}


def test_shape_inference_supports_exactly_the_records():
    net = caffe_pb2.NetParameter(layer=[_layer("Bogus")])
    with pytest.raises(ShapeError) as refusal:
        infer_shapes(net)
    assert f"(supported: {', '.join(sorted(LAYER_TYPES))})" in str(refusal.value)
    for name, record in LAYER_TYPES.items():
        assert (record.tops is None) == (record.source is not Source.NONE), name


def test_sources_and_deploy_data_types_come_from_the_records():
    assert {name for name, record in LAYER_TYPES.items() if record.source is Source.DATASET} == DATA_TYPES
    assert {name for name in LAYER_TYPES if is_source(_layer(name))} == {
        name for name, record in LAYER_TYPES.items() if record.source is not Source.NONE}


def test_coordinate_maps_follow_the_records_and_caffe():
    for name, record in LAYER_TYPES.items():
        if name in CAFFE_PASS_THROUGH:
            assert record.coord is Coord.IDENTITY, name
            assert layer_map(_layer(name)) == IDENTITY
        else:
            assert record.coord is not Coord.IDENTITY, name
    window = caffe_pb2.ConvolutionParameter(kernel_size=[3], stride=[2])
    windowed = _layer("Convolution", convolution_param=window)
    assert layer_map(windowed).scale == (0.5,)
    assert layer_map(_layer("InnerProduct")) is None


def test_footprints_follow_the_records():
    """Pixel-wise records pass a footprint through; reshaping and loss records end it. LRN
    (within channels) and MVN (the whole map) keep Caffe's identity coordinate map but are not
    pixel-wise."""
    for name, record in LAYER_TYPES.items():
        if record.source is not Source.NONE:
            continue
        try:
            result = record.footprint(_layer(name), [PIXEL])
        except RuleError:  # a window type without a kernel: inference treats it as not local
            result = None
        assert result in (PIXEL, None), name
        if record.coord is Coord.IDENTITY and name not in ("LRN", "MVN"):
            assert result == PIXEL, name
    within = _layer("LRN", lrn_param=caffe_pb2.LRNParameter(norm_region=1, local_size=5))
    assert LAYER_TYPES["LRN"].footprint(within, [PIXEL]).high == (2, 2)


def test_parameter_shapes_come_from_the_records():
    net = caffe_pb2.NetParameter()
    net.layer.add(name="data", type="Input", top=["data"]).input_param.shape.add(dim=[1, 3, 8, 8])
    net.layer.add(name="bn", type="BatchNorm", bottom=["data"], top=["bn"])
    net.layer.add(name="relu", type="ReLU", bottom=["bn"], top=["bn"])
    assert param_shapes(net) == {"data": [], "bn": [(3,), (3,), (1,)], "relu": []}


def test_the_net_graph_draws_each_type_in_its_records_family():
    net = caffe_pb2.NetParameter(layer=[_layer(name, top=[name]) for name in LAYER_TYPES])
    nodes = [node for node in layout(net).nodes if not node.waypoint]
    assert [node.family for node in nodes] == [record.family for record in LAYER_TYPES.values()]
    assert layout(caffe_pb2.NetParameter(layer=[_layer("Bogus")])).nodes[0].family == "other"


def _type_tables(path: Path, type_names: set[str]) -> list[str]:
    """Sets, dicts and module-level lists or tuples that hold two or more layer type names."""
    tree = ast.parse(path.read_text())
    module_level = {id(node.value) for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Set | ast.Dict):
            items = [*node.keys, *node.values] if isinstance(node, ast.Dict) else node.elts
        elif isinstance(node, ast.List | ast.Tuple) and id(node) in module_level:
            items = node.elts
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("set", "frozenset"):
            items = getattr(node.args[0], "elts", []) if node.args else []
        else:
            continue
        names = [item.value for item in items if isinstance(item, ast.Constant) and item.value in type_names]
        if len(names) >= 2:
            found.append(f"{path}:{node.lineno} {names}")
    return found


def test_no_module_keeps_its_own_table_of_layer_types():
    """Only the records name layer types in tables; upgrade.py's V0/V1 tables translate the old
    file formats' enum names (every V1 type, supported or not), not what digitslite supports."""
    type_names = set(LAYER_TYPES) | set(V1_TYPE_NAMES.values()) - {""}
    exempt = {PACKAGE / "caffe" / "upgrade.py", PACKAGE / "caffe" / "caffe_pb2.py"}
    tables = [table for path in sorted(PACKAGE.rglob("*.py"))
              if path not in exempt and PACKAGE / "caffe" / "layers" not in path.parents
              for table in _type_tables(path, type_names)]
    assert tables == []


def test_the_scan_finds_a_table(tmp_path):
    probe = PACKAGE / "caffe" / "shapes.py"
    assert _type_tables(probe, {"Data", "ImageData", "Input"}) == []  # single comparisons are no table
    table = tmp_path / "table.py"
    table.write_text('KNOWN = ("ReLU", "TanH")\n\ndef f(t):\n    return t in {"ReLU", "Sigmoid"}\n')
    assert len(_type_tables(table, {"ReLU", "TanH", "Sigmoid"})) == 2


def test_the_layer_doc_is_what_the_records_generate():
    committed = layerdoc.DOC_PATH.read_text()
    assert committed == layerdoc.render(), "run: python -m digitslite.caffe.layerdoc"
    for name, record in LAYER_TYPES.items():
        assert f"| {name} | {record.summary} |" in committed
    assert "`num_output`, `bias_term` = true" in committed


def test_the_records_import_no_torch():
    code = ("import sys, digitslite.caffe.layers, digitslite.caffe.shapes, digitslite.caffe.coordmap, "
            "digitslite.caffe.layerdoc, digitslite.viz.netgraph; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
