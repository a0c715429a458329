"""Fixtures of the golden tests."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Run on one intra-op thread: the layer and solver cases are tensors of a few hundred values,
    where thread hand-offs cost 20x the arithmetic on a loaded machine. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
