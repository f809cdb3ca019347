"""The pull watchdog: progress from the engine's messages, the deadline, no-progress, and the 5 s log."""

from __future__ import annotations

import pytest

from agent.runtimes.pull import PullAborted, PullProgress, PullWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def downloading(layer: str, current: int, total: int) -> dict[str, object]:
    return {"status": "Downloading", "id": layer, "progressDetail": {"current": current, "total": total}}


def test_progress_counts_bytes_and_layers_done() -> None:
    p = PullProgress()
    assert not p.feed({"status": "Pulling from ns/web", "id": "sha256:abc"})
    assert p.feed({"status": "Already exists", "id": "a"})
    assert p.feed({"status": "Pulling fs layer", "id": "b"})
    assert p.feed({"status": "Pulling fs layer", "id": "c"})
    assert p.feed(downloading("b", 5_000_000, 150_000_000))
    assert not p.feed(downloading("b", 5_000_000, 150_000_000))  # the same figure again: no progress
    assert p.feed(downloading("c", 1_000_000, 2_000_000))
    assert p.feed({"status": "Download complete", "id": "c"})
    assert p.feed({"status": "Pull complete", "id": "c"})
    assert p.summary() == "7.0 MB of 152.0 MB, 2 of 3 layers done"
    assert not p.feed({"status": "Digest: sha256:abc"})


def test_messages_without_progress_trip_the_stall_watchdog() -> None:
    clock = Clock()
    w = PullWatch(timeout=900, stall=60, clock=clock)
    w.feed(downloading("b", 1_000_000, 10_000_000))
    clock.now += 59
    w.feed({"status": "Waiting", "id": "c"})  # a new state is progress
    clock.now += 59
    w.feed(downloading("b", 1_000_000, 10_000_000))  # nothing moved for 59 s: still within the window
    clock.now += 2
    with pytest.raises(
        PullAborted,
        match=r"no progress for pull_stall 60s \(1.0 MB of 10.0 MB, 0 of 2 layers done\); aborted",
    ):
        w.feed(downloading("b", 1_000_000, 10_000_000))


def test_bytes_flowing_slowly_still_end_at_the_deadline() -> None:
    clock = Clock()
    w = PullWatch(timeout=30, stall=10, clock=clock)
    for i in range(1, 30):
        clock.now += 1
        w.feed(downloading("b", i * 1_000_000, 100_000_000))
    clock.now += 1
    with pytest.raises(PullAborted, match=r"not done within pull_timeout 30s \(30.0 MB of 100.0 MB, 0 of 1"):
        w.feed(downloading("b", 30_000_000, 100_000_000))


def test_progress_is_reported_at_most_every_5_seconds_and_only_when_it_changed() -> None:
    clock = Clock()
    w = PullWatch(timeout=900, stall=60, clock=clock)
    w.feed(downloading("b", 1_000_000, 4_000_000))
    assert w.due_report() is None  # not 5 s yet
    clock.now += 5
    assert w.due_report() == "1.0 MB of 4.0 MB, 0 of 1 layers done"
    clock.now += 1
    w.feed(downloading("b", 2_000_000, 4_000_000))
    assert w.due_report() is None
    clock.now += 5
    assert w.due_report() == "2.0 MB of 4.0 MB, 0 of 1 layers done"
    clock.now += 5
    assert w.due_report() is None  # nothing new to say
