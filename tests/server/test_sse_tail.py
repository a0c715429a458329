"""The metrics tail behind the event stream: whole lines only, and a replaced file (a resumed
training rewrites metrics.jsonl by rename, keeping the records before its snapshot) read again
from its first record, with the replacement reported."""
import json

from digitslite.fileio import write_atomically
from digitslite.server.sse import MetricsTail


def lines(*iterations: int) -> str:
    return "".join(json.dumps({"iteration": iteration}) + "\n" for iteration in iterations)


def iterations(records: list[dict]) -> list[int]:
    return [record["iteration"] for record in records]


def test_the_tail_reads_whole_appended_lines_and_starts_over_on_a_replaced_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path, skip=0)
    assert tail.new_records() == ([], False)  # no file yet

    write_atomically(path, lines(1, 2, 3).encode())
    records, replaced = tail.new_records()
    assert iterations(records) == [1, 2, 3] and not replaced
    first_file = tail.position.split(":")[0]
    with path.open("a") as metrics:
        metrics.write(lines(4) + '{"iteration": 5')  # the last line is still being written
    records, replaced = tail.new_records()
    assert iterations(records) == [4] and not replaced and tail.position == f"{first_file}:4"

    write_atomically(path, lines(1, 2).encode())  # resumed from the snapshot of iteration 3
    with path.open("a") as metrics:
        metrics.write(lines(3))
    records, replaced = tail.new_records()
    assert iterations(records) == [1, 2, 3] and replaced
    assert tail.position != f"{first_file}:3" and tail.position.endswith(":3")


def test_a_resume_point_in_the_same_file_skips_what_was_sent_and_one_in_another_file_does_not(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_atomically(path, lines(1, 2, 3).encode())
    current = path.stat().st_ino  # the file part of an event id

    records, replaced = MetricsTail(path, skip=2, file_id=current).new_records()
    assert iterations(records) == [3] and not replaced
    records, replaced = MetricsTail(path, skip=2, file_id=current + 1).new_records()
    assert iterations(records) == [1, 2, 3] and replaced
