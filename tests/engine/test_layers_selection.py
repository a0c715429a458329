"""Filter, BatchReindex and Embed read indices from data: what they do with unusual ones."""
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import make_layer


def test_filter_keeps_the_selected_items_in_order_and_may_keep_none():
    layer = make_layer('name: "f" type: "Filter" top: "y"', (4, 2), (4,))
    data = torch.arange(8.0).reshape(4, 2)
    assert torch.equal(layer(data, torch.tensor([0.0, 2.0, 0.0, -1.0]))[0], data[[1, 3]])
    assert layer(data, torch.zeros(4))[0].shape == (0, 2)


def test_batch_reindex_refuses_an_index_past_the_batch():
    layer = make_layer('name: "r" type: "BatchReindex"', (3, 2), (2,))
    with pytest.raises(UserError, match=r"outside the 3 items.*\[0, 3\)"):
        layer(torch.zeros(3, 2), torch.tensor([0.0, 3.0]))


@pytest.mark.parametrize("index", [1.5, 6.0, -1.0])
def test_embed_refuses_an_input_that_is_not_an_index_below_input_dim(index):
    layer = make_layer('name: "e" type: "Embed" embed_param { num_output: 2 input_dim: 6 }', (2,))
    with pytest.raises(UserError, match=r"not an integer index in \[0, 6\)"):
        layer(torch.tensor([0.0, index]))
