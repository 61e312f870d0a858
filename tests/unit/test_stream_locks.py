"""StreamLocks: writes to different jobs never wait for each other; to one job, they take turns."""

from __future__ import annotations

import threading

from ledger.application import StreamLocks


def test_disjoint_streams_are_held_at_once_and_shared_ones_in_turn() -> None:
    locks = StreamLocks()
    inside = threading.Event()
    leave = threading.Event()

    def hold(streams: list[str]) -> None:
        with locks.held(streams):
            inside.set()
            leave.wait(5)

    first = threading.Thread(target=hold, args=([f"t/job-{n}" for n in range(0, 500, 2)],))
    first.start()
    assert inside.wait(5)
    # Every other job: a striped lock table would almost surely have shared a stripe.
    others = threading.Event()

    def other() -> None:
        with locks.held([f"t/job-{n}" for n in range(1, 500, 2)]):
            others.set()

    second = threading.Thread(target=other)
    second.start()
    assert others.wait(5), "a write to other jobs waited"
    second.join()
    overlapping = threading.Event()

    def overlap() -> None:
        with locks.held(["t/job-999", "t/job-2"]):
            overlapping.set()

    third = threading.Thread(target=overlap)
    third.start()
    assert not overlapping.wait(0.2), "a write to a held job went ahead"
    leave.set()
    assert overlapping.wait(5)
    first.join()
    third.join()
    assert locks._locks == {}  # nothing is kept once no write holds it


def test_a_stream_named_twice_is_taken_once() -> None:
    locks = StreamLocks()
    with locks.held(["t/a", "t/a", "t/b"]):
        assert sorted(locks._locks) == ["t/a", "t/b"]
    assert locks._locks == {}
