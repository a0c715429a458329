"""Item 13 (multi-node): ranks that never meet give up after the rendezvous timeout with a message
naming the meeting point, instead of waiting (torch's default is half an hour)."""
import socket

import pytest
import torch

from digitslite.engine.distributed import Ranks
from digitslite.engine.launch import RankEnvironment
from digitslite.errors import UserError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("rank", [0, 1], ids=["rank 0 alone", "rank 1 alone"])
def test_ranks_that_never_meet_give_up(monkeypatch, rank):
    port = _free_port()
    monkeypatch.setenv("DIGITSLITE_RENDEZVOUS_TIMEOUT_S", "2")
    env = RankEnvironment(rank, 2, 0, 1, "127.0.0.1", port)
    for name, value in env.variables().items():  # as a launcher starts the rank
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=f"cannot join the ranks at 127.0.0.1:{port}"):
        Ranks.join(env, torch.device("cpu"))
