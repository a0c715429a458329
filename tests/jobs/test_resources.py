"""Which queued jobs start: exclusive GPUs by count or id, CPU slots, queue order without starvation."""
from digitslite.jobs.resources import Grant, Request, plan, unsatisfiable

GPUS = ["0", "1", "2"]


def test_jobs_start_in_queue_order_while_resources_last():
    requests = [Request("a", 1), Request("b", ["2"]), Request("c", 0), Request("d", 0), Request("e", 0)]
    grants = plan(requests, GPUS, busy_gpus=set(), cpu_slots=2, busy_cpu_slots=0)
    assert grants == [Grant("a", ["0"]), Grant("b", ["2"]), Grant("c", []), Grant("d", [])]


def test_a_job_waits_until_every_gpu_it_asked_for_is_free():
    assert plan([Request("a", 2)], GPUS, busy_gpus={"0", "1"}, cpu_slots=1, busy_cpu_slots=0) == []
    assert plan([Request("a", ["0", "2"])], GPUS, {"0"}, 1, 0) == []
    assert plan([Request("a", ["0", "2"])], GPUS, {"1"}, 1, 0) == [Grant("a", ["0", "2"])]


def test_a_waiting_job_holds_back_the_gpus_it_waits_for_from_jobs_behind_it():
    # "a" needs two GPUs and only one is free: the one-GPU job behind it may not take that one.
    assert plan([Request("a", 2), Request("b", 1)], GPUS, {"0", "1"}, 1, 0) == []
    # A job waiting for GPU 0 by id does not hold back GPU 2 from the job behind it.
    assert plan([Request("a", ["0"]), Request("b", 1)], GPUS, {"0", "1"}, 1, 0) == [Grant("b", ["2"])]
    # Jobs that need no GPU are not held back by a job waiting for GPUs.
    assert plan([Request("a", 3), Request("b", 0)], GPUS, {"0"}, 1, 0) == [Grant("b", [])]


def test_cpu_slots_are_shared_out_in_order():
    grants = plan([Request("a", 0), Request("b", 0)], [], set(), cpu_slots=3, busy_cpu_slots=2)
    assert grants == [Grant("a", [])]


def test_requests_this_machine_can_never_meet_are_named():
    assert "does not exist" in unsatisfiable(Request("a", ["7"]), GPUS)
    assert "has 3" in unsatisfiable(Request("a", 4), GPUS)
    assert unsatisfiable(Request("a", 3), GPUS) is None and unsatisfiable(Request("a", 0), []) is None


def test_a_pipelined_cpu_job_takes_a_slot_per_stage_and_holds_free_ones_back():
    # 3 slots, 1 busy: the two-stage job fits; then nothing is left for the one-slot job behind it
    assert plan([Request("a", 0, 2), Request("b", 0)], [], set(), 3, 1) == [Grant("a", [])]
    # 2 slots, 1 busy: the two-stage job waits, and the one free slot waits with it
    assert plan([Request("a", 0, 2), Request("b", 0)], [], set(), 2, 1) == []
    assert "3 CPU slots were asked for but this server has 2" in unsatisfiable(Request("a", 0, 3), [], 2)
