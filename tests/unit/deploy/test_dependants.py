"""Dependants: containers in a replaced container's network namespace follow it, in order, chains too."""

from __future__ import annotations

from agent.deploy.dependants import rejoin_dependants
from agent.errors import RuntimeFault
from agent.model import Rejoined
from tests.support.fakes import FakeRuntime


def test_children_then_grandchildren_rejoin_in_order_and_others_are_left_alone() -> None:
    rt = FakeRuntime()
    old = rt.add("parent", "sha256:" + "1" * 64, ())
    new = rt.add("parent-new", "sha256:" + "2" * 64, ())
    b = rt.add("b-child", "i", (), network_mode=f"container:{old}")
    rt.add("a-child", "i", (), network_mode=f"container:{old}")
    rt.add("grandchild", "i", (), network_mode=f"container:{b}")
    rt.add("compose-dependant", "i", (), labels={"com.docker.compose.depends_on": "parent:service_started"})
    done = rejoin_dependants(rt, old, new)
    assert [d.container for d in done] == ["a-child", "b-child", "grandchild"]
    assert [line for line in rt.log if line.startswith("rejoin")] == [
        "rejoin a-child", "rejoin b-child", "rejoin grandchild"
    ]  # fmt: skip
    by = rt.by_name()
    assert by["a-child"].network_mode == f"container:{new}"
    assert by["grandchild"].network_mode == f"container:{by['b-child'].id}"
    assert by["compose-dependant"].cloned_from is None


def test_a_failed_rejoin_is_reported_and_the_others_go_on() -> None:
    rt = FakeRuntime()
    old = rt.add("parent", "sha256:" + "1" * 64, ())
    rt.add("a", "i", (), network_mode=f"container:{old}")
    rt.add("b", "i", (), network_mode=f"container:{old}")
    rt.fail["rejoin"] = RuntimeFault("create a: boom")
    done = rejoin_dependants(rt, old, "f" * 64)
    assert done == [
        Rejoined("a", "failed", "create a: boom"),
        Rejoined("b", "restarted"),
    ]
