"""InnerProduct (a fully connected layer over all axes from `axis` on) and Embed (a learned lookup)."""
from digitslite.caffe.geometry import RuleError, Shape, canonical_axis
from digitslite.caffe.layers.record import Layer, LayerType, count, expect_bottoms


def _tops(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    param = layer.inner_product_param
    axis = canonical_axis(param.axis, len(bottoms[0]))
    if param.num_output == 0:
        raise RuleError("num_output is not set: give inner_product_param { num_output: N }")
    return [(*bottoms[0][:axis], param.num_output)]


def _blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """Weight (O, K), or (K, O) when transposed, K = the bottom's count from `axis` on."""
    param = layer.inner_product_param
    inputs = count(bottoms[0], canonical_axis(param.axis, len(bottoms[0])))
    weight = (inputs, param.num_output) if param.transpose else (param.num_output, inputs)
    return [weight, (param.num_output,)] if param.bias_term else [weight]


def _embed(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    param = layer.embed_param
    if param.num_output == 0 or param.input_dim == 0:
        raise RuleError("give embed_param { num_output: N input_dim: D } (both positive)")
    return [(*bottoms[0], param.num_output)]


def _embed_blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """The table (input_dim, num_output), then the bias (num_output)."""
    param = layer.embed_param
    table = (param.input_dim, param.num_output)
    return [table, (param.num_output,)] if param.bias_term else [table]


TYPES = (
    LayerType("InnerProduct", "fully-connected", "y = x·Wᵀ + b over the axes from `axis` on.",
              params=("inner_product_param",), tops=_tops, blobs=_blobs),
    LayerType("Embed", "fully-connected", "y = W[x] + b: rows of a learned table picked by integer inputs.",
              params=("embed_param",), tops=_embed, blobs=_embed_blobs),
)
