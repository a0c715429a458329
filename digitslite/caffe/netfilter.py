"""Caffe's NetState and include/exclude rules (caffe-spec §2.1 step 1, §2.2): which layers of a
train_val/deploy file exist in a given phase, level and set of stages."""
from collections.abc import Sequence

from digitslite.caffe import caffe_pb2
from digitslite.caffe.sourcemap import PrototxtError, SourceMap, source_map_or_default
from digitslite.errors import UserError

_PHASES = {"train": caffe_pb2.TRAIN, "test": caffe_pb2.TEST}


def phase_value(phase: str | int) -> int:
    """caffe_pb2.TRAIN / TEST from "train"/"test" (any case) or the enum value itself."""
    if isinstance(phase, str) and phase.lower() in _PHASES:
        return _PHASES[phase.lower()]
    if not isinstance(phase, str) and phase in _PHASES.values():
        return int(phase)
    raise UserError(f"unknown phase {phase!r}; use 'train' or 'test'")


def compose_state(net: caffe_pb2.NetParameter, phase: str | int = "test", level: int = 0,
                  stages: Sequence[str] = (), state: caffe_pb2.NetState | None = None) -> caffe_pb2.NetState:
    """The NetState a Solver gives this net: {phase}, merged with net.state, then with `state` (the
    solver's train_state / test_state[i]), as protobuf merges (set scalars win, stages append).

    `level` and `stages` are a shorthand for such a state: a nonzero level overrides, stages append.
    """
    composed = caffe_pb2.NetState(phase=phase_value(phase))
    composed.MergeFrom(net.state)
    if state is not None:
        composed.MergeFrom(state)
    if level:
        composed.level = level
    composed.stage.extend(stages)
    return composed


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """Caffe's StateMeetsRule: every condition the rule sets must hold."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    has_stages = all(stage in stages for stage in rule.stage)
    return has_stages and not any(stage in stages for stage in rule.not_stage)


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState,
                   source_map: SourceMap | None = None) -> bool:
    """No rules: kept. Exclude rules: kept unless one is met. Include rules: kept if one is met."""
    if len(layer.include) > 0 and len(layer.exclude) > 0:
        raise both_rules_error(layer, source_map_or_default(source_map, ""))
    if len(layer.exclude) > 0:
        return not any(state_meets_rule(state, rule) for rule in layer.exclude)
    if len(layer.include) > 0:
        return any(state_meets_rule(state, rule) for rule in layer.include)
    return True


def both_rules_error(layer: caffe_pb2.LayerParameter, where: SourceMap) -> PrototxtError:
    return where.error(layer.name, f"layer '{layer.name}' has both include and exclude rules",
                       "keep either include rules or exclude rules, not both", key="include")


def filter_net(net: caffe_pb2.NetParameter, phase: str | int = "test", level: int = 0,
               stages: Sequence[str] = (), *, state: caffe_pb2.NetState | None = None,
               source_map: SourceMap | None = None) -> caffe_pb2.NetParameter:
    """A copy of `net` holding only the layers included in the composed state (see compose_state),
    with that state recorded in its `state` field, as Caffe's FilterNet leaves it."""
    composed = compose_state(net, phase, level, stages, state)
    where = source_map_or_default(source_map, net.name)
    kept = [layer for layer in net.layer if layer_included(layer, composed, where)]
    filtered = copy_without_layers(net)
    filtered.layer.extend(kept)
    filtered.state.CopyFrom(composed)
    return filtered


def copy_without_layers(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Every net-level field of `net` except `layer`, without copying the layers (and their blobs)."""
    header = caffe_pb2.NetParameter()
    for descriptor, value in net.ListFields():
        if descriptor.name == "layer":
            continue
        if descriptor.is_repeated:
            getattr(header, descriptor.name).extend(value)
        elif descriptor.message_type is not None:
            getattr(header, descriptor.name).CopyFrom(value)
        else:
            setattr(header, descriptor.name, value)
    return header
