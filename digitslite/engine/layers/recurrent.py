"""Recurrent layers: LSTMUnit (one LSTM step), and RNN and LSTM over a whole (T, N, ...) sequence,
computed as Caffe's unrolled nets compute them.

Both sequence layers take x (T, N, ...), cont (T, N) and an optional static input (N, ...); where
cont is 0 the state carried into that step is zeroed (a new sequence starts). The state before
the first step is 0 in every forward pass (expose_hidden is refused by shape inference).
"""
import torch

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers.base import CaffeLayer, Shape, register


def lstm_step(cell: torch.Tensor, gates: torch.Tensor,
              cont: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's LSTMUnit: gates hold [i, f, o, g] pre-activations of width H each;
    c = cont·f·c_prev + i·g and h = o·tanh(c)."""
    width = cell.shape[-1]
    input_gate, forget_gate, output_gate = torch.sigmoid(gates[..., :3 * width]).split(width, dim=-1)
    candidate = torch.tanh(gates[..., 3 * width:])
    cell = cont.unsqueeze(-1) * forget_gate * cell + input_gate * candidate
    return cell, output_gate * torch.tanh(cell)


@register("LSTMUnit")
class LSTMUnit(CaffeLayer):
    """One LSTM step on c_prev (1, N, H), gate inputs (1, N, 4H) and cont (1, N); tops c and h.
    cont gets no gradient."""

    def forward(self, cell: torch.Tensor, gates: torch.Tensor,
                cont: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return lstm_step(cell, gates, cont.detach().to(cell.dtype))


class _Recurrent(CaffeLayer):
    """Blobs in the order of Caffe's unrolled net (the record's sequence_blobs)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.static = len(bottom_shapes) == 3
        recurrent = param.recurrent_param
        names = self.names(self.static)
        for name, shape in zip(names, self.blob_shapes, strict=True):
            filler, field = ((recurrent.bias_filler, "bias_filler") if name.startswith("b_")
                             else (recurrent.weight_filler, "weight_filler"))
            setattr(self, name, self.new_param(shape, filler, generator, field))
        self.blob_names = names

    @staticmethod
    def names(static: bool) -> tuple[str, ...]:
        raise NotImplementedError

    def input_terms(self, x: torch.Tensor, static: torch.Tensor | None, weight: torch.Tensor,
                    bias: torch.Tensor, static_weight: torch.Tensor | None) -> torch.Tensor:
        """W·x_t + b for every step at once, plus W_static·x_static broadcast over the steps."""
        terms = x.flatten(2) @ weight.t() + bias
        if static is not None:
            terms = terms + (static.flatten(1) @ static_weight.t()).unsqueeze(0)
        return terms


@register("RNN")
class RNN(_Recurrent):
    """h_t = tanh(W_hh·(cont_t·h_{t−1}) + W_xh·x_t + b_h [+ W_xh_static·x_static]),
    o_t = tanh(W_ho·h_t + b_o); the top is o (T, N, num_output)."""

    @staticmethod
    def names(static: bool) -> tuple[str, ...]:
        return ("w_xh", "b_h", *(("w_xh_static",) if static else ()), "w_hh", "w_ho", "b_o")

    def forward(self, x: torch.Tensor, cont: torch.Tensor,
                static: torch.Tensor | None = None) -> tuple[torch.Tensor]:
        inputs = self.input_terms(x, static, self.w_xh, self.b_h, getattr(self, "w_xh_static", None))
        cont = cont.detach().to(inputs.dtype)
        hidden = inputs.new_zeros(inputs.shape[1:])
        outputs = []
        for step in range(inputs.shape[0]):
            hidden = torch.tanh((cont[step].unsqueeze(-1) * hidden) @ self.w_hh.t() + inputs[step])
            outputs.append(torch.tanh(hidden @ self.w_ho.t() + self.b_o))
        return (torch.stack(outputs),)


@register("LSTM")
class LSTM(_Recurrent):
    """gates_t = W_hc·(cont_t·h_{t−1}) + W_xc·x_t + b_c [+ W_xc_static·x_static], then an LSTMUnit
    step; the top is h (T, N, num_output)."""

    @staticmethod
    def names(static: bool) -> tuple[str, ...]:
        return ("w_xc", "b_c", *(("w_xc_static",) if static else ()), "w_hc")

    def forward(self, x: torch.Tensor, cont: torch.Tensor,
                static: torch.Tensor | None = None) -> tuple[torch.Tensor]:
        inputs = self.input_terms(x, static, self.w_xc, self.b_c, getattr(self, "w_xc_static", None))
        cont = cont.detach().to(inputs.dtype)
        hidden = inputs.new_zeros((*inputs.shape[1:-1], self.w_hc.shape[1]))
        cell = torch.zeros_like(hidden)
        outputs = []
        for step in range(inputs.shape[0]):
            gates = (cont[step].unsqueeze(-1) * hidden) @ self.w_hc.t() + inputs[step]
            cell, hidden = lstm_step(cell, gates, cont[step])
            outputs.append(hidden)
        return (torch.stack(outputs),)
