"""observe's registry lookups: one per repository, concurrent, never more than LOOKUPS at a time."""

from __future__ import annotations

import threading
from collections.abc import Collection

from agent.errors import RegistryError, TagDigestError
from agent.model import RepoKey
from agent.reconcile.observe import LOOKUPS, lookup_all

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
DEADLINE = 10.0  # seconds a fake waits for the others before it gives up (never reached when concurrent)


class Gate:
    """A registry whose lookups block until `want` are in flight at once (or every lookup has started)."""

    def __init__(self, want: int, total: int) -> None:
        self.want, self.total = want, total
        self.cond = threading.Condition()
        self.in_flight = self.started = self.most = 0
        self.timed_out = 0

    def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
        with self.cond:
            self.in_flight += 1
            self.started += 1
            self.most = max(self.most, self.in_flight)
            self.cond.notify_all()
            ok = self.cond.wait_for(
                lambda: self.in_flight >= self.want or self.started >= self.total,
                timeout=DEADLINE,
            )
            self.timed_out += not ok
            self.in_flight -= 1
        return {t: A for t in tags}

    def credentials(self, host: str) -> tuple[str, str] | None:
        return None


def _wanted(n: int) -> dict[tuple[str, RepoKey], set[str]]:
    return {("aliyun", RepoKey("r.example.com", "ns", f"app{i}")): {"latest"} for i in range(n)}


def test_lookups_of_distinct_repositories_are_in_flight_together() -> None:
    gate = Gate(want=5, total=5)
    looked = lookup_all({"aliyun": gate}, _wanted(5))  # type: ignore[dict-item]
    assert gate.timed_out == 0 and gate.most == 5  # all five were asked before any answered
    assert sorted(k[1].name for k in looked.found) == [f"app{i}" for i in range(5)]
    assert all(v == {"latest": A} for v in looked.found.values())


def test_never_more_than_the_bound_at_once() -> None:
    n = LOOKUPS * 2 + 3
    gate = Gate(want=LOOKUPS, total=n)  # unbounded, more than LOOKUPS would be in flight at once
    looked = lookup_all({"aliyun": gate}, _wanted(n))  # type: ignore[dict-item]
    assert gate.timed_out == 0 and gate.most == LOOKUPS and len(looked.found) == n


class Mixed:
    """One repository lists a bad digest, one fails, the others answer."""

    def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
        if repo.name == "bad":
            raise TagDigestError("bad digest", found={"latest": B}, bad={"v2": "md5:xyz"})
        if repo.name == "down":
            raise RegistryError("ACR ListRepoTag for ns/down: timed out", temporary=True)
        return {t: A for t in tags}

    def credentials(self, host: str) -> tuple[str, str] | None:
        return None


def test_errors_stay_with_their_repository_when_concurrent() -> None:
    def key(name: str) -> tuple[str, RepoKey]:
        return ("aliyun", RepoKey("r.example.com", "ns", name))

    wanted = {
        key("bad"): {"latest", "v2"},
        key("down"): {"latest"},
        key("ok1"): {"latest"},
        key("ok2"): {"x"},
    }
    looked = lookup_all({"aliyun": Mixed()}, wanted)  # type: ignore[dict-item]
    assert looked.found == {key("bad"): {"latest": B}, key("ok1"): {"latest": A}, key("ok2"): {"x": A}}
    assert looked.bad_tags == {key("bad"): {"v2": "md5:xyz"}}
    assert list(looked.failed) == [key("down")] and "timed out" in looked.failed[key("down")]


class Waits:
    """A registry whose every lookup waits until the caller's `meanwhile` has begun."""

    def __init__(self) -> None:
        self.meanwhile_began = threading.Event()
        self.asked = threading.Event()
        self.missed = 0

    def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
        self.asked.set()
        self.missed += not self.meanwhile_began.wait(DEADLINE)
        return {t: A for t in tags}

    def credentials(self, host: str) -> tuple[str, str] | None:
        return None


def test_the_callers_own_work_runs_while_the_lookups_are_in_flight() -> None:
    reg = Waits()
    seen_in_flight = []

    def meanwhile() -> None:  # observe asks the engines here
        reg.meanwhile_began.set()
        seen_in_flight.append(reg.asked.wait(DEADLINE))

    looked = lookup_all({"aliyun": reg}, _wanted(LOOKUPS + 2), meanwhile)  # type: ignore[dict-item]
    assert seen_in_flight == [True] and reg.missed == 0 and len(looked.found) == LOOKUPS + 2


def test_a_bug_in_a_lookup_is_raised_in_the_caller_after_the_others_finish() -> None:
    class Buggy(Mixed):
        def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
            if repo.name == "app1":
                raise KeyError("a bug")
            return super().latest(repo, tags)

    try:
        lookup_all({"aliyun": Buggy()}, _wanted(4))  # type: ignore[dict-item]
    except KeyError as e:
        assert "a bug" in str(e)
    else:
        raise AssertionError("the bug was swallowed")
    assert not [t for t in threading.enumerate() if t.name.startswith("lookup-")]
