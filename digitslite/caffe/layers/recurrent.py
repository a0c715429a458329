"""RNN, LSTM and LSTMUnit: sequences (T, N, ...) with a continuation indicator cont (T, N)."""
import math

from digitslite.caffe.geometry import RuleError, Shape
from digitslite.caffe.layers.record import Layer, LayerType, expect_bottoms, fmt


def _sequence(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2, 3)
    param, data, cont = layer.recurrent_param, bottoms[0], bottoms[1]
    if param.expose_hidden:
        raise RuleError("expose_hidden is not supported by digitslite; remove it (the hidden state "
                        "then starts at 0 in every forward pass)")
    if param.num_output == 0:
        raise RuleError("num_output is not set: give recurrent_param { num_output: N }")
    if len(data) < 3 or cont != data[:2]:
        raise RuleError(f"the input must be (T,N,...) with the sequence continuation (T,N), got "
                        f"{fmt(data)} and {fmt(cont)}")
    if len(bottoms) == 3 and (not bottoms[2] or bottoms[2][0] != data[1]):
        raise RuleError(f"the static input {fmt(bottoms[2])} must have the {data[1]} streams on axis 0")
    return [(*data[:2], param.num_output)]


def sequence_blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """In the order of Caffe's unrolled net. RNN: W_xh, b_h, [W_xh_static], W_hh, W_ho, b_o.
    LSTM: W_xc, b_c, [W_xc_static], W_hc, with 4H rows (the i, f, o, g gates)."""
    outputs, inputs = layer.recurrent_param.num_output, math.prod(bottoms[0][2:])
    rows = 4 * outputs if layer.type == "LSTM" else outputs
    static = [(rows, math.prod(bottoms[2][1:]))] if len(bottoms) == 3 else []
    if layer.type == "LSTM":
        return [(rows, inputs), (rows,), *static, (rows, outputs)]
    return [(rows, inputs), (rows,), *static, (outputs, outputs), (outputs, outputs), (outputs,)]


def _lstm_unit(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 3)
    cell, gates, cont = bottoms
    if len(cell) != 3 or cell[0] != 1 or gates != (1, cell[1], 4 * cell[2]) or cont != cell[:2]:
        raise RuleError(f"needs the cell (1,N,H), the gate inputs (1,N,4H) and cont (1,N); got "
                        f"{fmt(cell)}, {fmt(gates)} and {fmt(cont)}")
    return [cell, cell]


TYPES = (
    LayerType("RNN", "recurrent", "Elman network: h_t = tanh(W·x_t + U·h_t−1 + b), o_t = tanh(V·h_t + c).",
              params=("recurrent_param",), tops=_sequence, blobs=sequence_blobs),
    LayerType("LSTM", "recurrent", "Long short-term memory over a sequence; the top is h for every step.",
              params=("recurrent_param",), tops=_sequence, blobs=sequence_blobs),
    LayerType("LSTMUnit", "recurrent", "One LSTM step: c_t and h_t from c_t−1, the gate inputs and cont.",
              tops=_lstm_unit),
)
