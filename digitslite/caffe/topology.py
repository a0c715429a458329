"""How blobs flow between layers: Caffe's checks at net construction (caffe-spec §2.1 step 4) and its
automatic Split insertion (§2.3), with the exact names Caffe gives split layers and their tops."""
import difflib
from collections import defaultdict

from digitslite.caffe import caffe_pb2
from digitslite.caffe.netfilter import both_rules_error, copy_without_layers
from digitslite.caffe.sourcemap import PrototxtError, SourceMap, source_map_or_default

TopRef = tuple[int, int]   # (layer index, top index) of the layer that produced a blob


def split_layer_name(blob: str, producer: str, top_index: int) -> str:
    return f"{blob}_{producer}_{top_index}_split"


def split_blob_name(blob: str, producer: str, top_index: int, split_index: int) -> str:
    return f"{split_layer_name(blob, producer, top_index)}_{split_index}"


def insert_splits(net: caffe_pb2.NetParameter, source_map: SourceMap | None = None) -> caffe_pb2.NetParameter:
    """A copy of `net` with a "Split" layer after every top that is used more than once.

    A use is a bottom reading the top (the last producer of that name, in-place layers included) or
    an explicit nonzero `loss_weight` on it. The split carries that loss weight on its first top
    and the producer's loss_weight list is cleared, as Caffe does.
    """
    where = source_map_or_default(source_map, net.name)
    source_of: dict[TopRef, TopRef] = {}          # (consumer, bottom index) -> producing top
    uses: dict[TopRef, int] = defaultdict(int)
    loss_weights: dict[TopRef, float] = {}
    last_producer: dict[str, TopRef] = {}
    for index, layer in enumerate(net.layer):
        for position, blob in enumerate(layer.bottom):
            if blob not in last_producer:
                raise _unknown_bottom(layer, blob, list(last_producer), where)
            source_of[index, position] = last_producer[blob]
            uses[last_producer[blob]] += 1
        for position, blob in enumerate(layer.top):
            last_producer[blob] = (index, position)
        for position, weight in enumerate(layer.loss_weight[:len(layer.top)]):
            produced = last_producer[layer.top[position]]
            loss_weights[produced] = weight
            if weight:
                uses[produced] += 1
    result = copy_without_layers(net)
    next_split: dict[TopRef, int] = defaultdict(int)
    for index, original in enumerate(net.layer):
        layer = result.layer.add()
        layer.CopyFrom(original)
        for position, blob in enumerate(layer.bottom):
            produced = source_of[index, position]
            if uses[produced] > 1:
                producer = net.layer[produced[0]].name
                layer.bottom[position] = split_blob_name(blob, producer, produced[1], next_split[produced])
                next_split[produced] += 1
        for position, blob in enumerate(layer.top):
            count = uses[index, position]
            if count <= 1:
                continue
            weight = loss_weights.get((index, position), 0.0)
            result.layer.append(_split_layer(layer.name, blob, position, count, weight))
            if weight:
                layer.ClearField("loss_weight")
                next_split[index, position] += 1
    return result


def _split_layer(producer: str, blob: str, top_index: int, count: int, loss_weight: float
                 ) -> caffe_pb2.LayerParameter:
    split = caffe_pb2.LayerParameter(name=split_layer_name(blob, producer, top_index), type="Split",
                                     bottom=[blob])
    split.top.extend(split_blob_name(blob, producer, top_index, k) for k in range(count))
    if loss_weight:
        split.loss_weight.extend([loss_weight] + [0.0] * (count - 1))
    return split


def check_topology(net: caffe_pb2.NetParameter, source_map: SourceMap | None = None) -> None:
    """Raise PrototxtError at the layer for what Caffe's Net::Init refuses: a bottom no earlier layer
    produces, a top produced again by a layer that is not in-place at that index, include and
    exclude rules on one layer, a propagate_down count that differs from the bottom count.

    Run it on a filtered net: a train_val file legitimately has a TRAIN and a TEST layer writing the
    same top.
    """
    where = source_map_or_default(source_map, net.name)
    producer_of: dict[str, str] = {}
    for layer in net.layer:
        if len(layer.include) > 0 and len(layer.exclude) > 0:
            raise both_rules_error(layer, where)
        _check_propagate_down(layer, where)
        for blob in layer.bottom:
            if blob not in producer_of:
                raise _unknown_bottom(layer, blob, list(producer_of), where)
        for position, blob in enumerate(layer.top):
            in_place = position < len(layer.bottom) and layer.bottom[position] == blob
            if blob in producer_of and not in_place:
                raise _duplicate_top(layer, blob, producer_of[blob], where)
            producer_of.setdefault(blob, layer.name)


def _check_propagate_down(layer: caffe_pb2.LayerParameter, where: SourceMap) -> None:
    given, bottoms = len(layer.propagate_down), len(layer.bottom)
    if given and given != bottoms:
        raise where.error(layer.name, f"layer '{layer.name}' has {given} propagate_down entries for "
                          f"{bottoms} bottom(s)", "give one propagate_down per bottom, in bottom order, "
                          "or none", key="propagate_down")


def _duplicate_top(layer: caffe_pb2.LayerParameter, blob: str, first_producer: str,
                   where: SourceMap) -> PrototxtError:
    return where.error(layer.name, f"Top blob '{blob}' produced by multiple sources: layer '{layer.name}' "
                       f"writes it and '{first_producer}' already does",
                       "give this top a new name, or make the layer in-place by listing the same name as its "
                       "bottom at the same position", key="top", value=blob, token=blob)


def _unknown_bottom(layer: caffe_pb2.LayerParameter, blob: str, available: list[str],
                    where: SourceMap) -> PrototxtError:
    close = difflib.get_close_matches(blob, available, n=1)
    if close:
        hint = f"did you mean '{close[0]}'?"
    elif available:
        hint = f"earlier layers produce: {', '.join(available[:8])}{', ...' if len(available) > 8 else ''}"
    else:
        hint = "no layer before it produces any blob; put the layer that produces it first"
    return where.error(layer.name, f"Unknown bottom blob '{blob}' in layer '{layer.name}': no earlier layer "
                       "produces it", hint, key="bottom", value=blob, token=blob)
