"""A pipelined job's processes: stages x replicas, one GPU or CPU slot each (server/scale_out.py)."""
import re

import pytest

from digitslite.server.errors import ApiError
from digitslite.server.scale_out import cpu_slots, scale_out_request
from digitslite.server.schemas.requests import ModelRequest


def request(**fields) -> ModelRequest:
    return ModelRequest(dataset="20000101-000000-aaaaaa", network="fcn_tiny", **fields)


@pytest.fixture(autouse=True)
def eight_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)


def test_a_cpu_pipeline_of_three_stages_in_two_replicas_takes_six_slots():
    asked = request(pipeline_stages=3, ranks=2, micro_batches=4, pipeline_balance="parameters")
    fields = scale_out_request(asked, 0)
    assert (fields["pipeline_stages"], fields["ranks"], fields["micro_batches"]) == (3, 2, 4)
    assert fields["pipeline_balance"] == "parameters"
    assert cpu_slots(fields) == 6
    assert cpu_slots(scale_out_request(request(ranks=2), 0)) == 1     # data-parallel CPU ranks: one slot


def test_a_gpu_pipeline_makes_its_replicas_from_the_gpu_count():
    # TrainConfig starts one rank per named GPU: the replicas follow from the count
    assert scale_out_request(request(pipeline_stages=2), ["0", "1", "2", "3"])["ranks"] == 1
    assert scale_out_request(request(pipeline_stages=2, ranks=2), 4)["pipeline_stages"] == 2


@pytest.mark.parametrize(("fields", "gpus", "words"), [
    ({"pipeline_stages": 3, "ranks": 3}, 0, "pipeline_stages x ranks must be at most 8"),
    ({"pipeline_stages": 2}, 3, "ask for a multiple of 2 GPUs (got 3)"),
    ({"pipeline_stages": 2, "ranks": 1}, 4, "4 GPUs make 2 replicas of the 2-stage pipeline"),
])
def test_impossible_pipelines_are_refused_naming_the_field(fields, gpus, words):
    with pytest.raises(ApiError, match=re.escape(words)):
        scale_out_request(request(**fields), gpus)
