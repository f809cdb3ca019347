"""Label discovery: which containers are watched, how labels are validated, what wins, what it costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config import parse
from agent.config.labels import describe, origins
from agent.deploy import Deployer
from agent.deploy.service import ServiceDeployer
from agent.errors import RuntimeFault
from agent.model import Status
from agent.reconcile.discover import SWARM_TASK, discover, from_listing
from agent.reconcile.run import Context, reconcile
from agent.reconcile.targets import ServiceTarget
from agent.runtimes import ListedContainer, ListedService
from agent.state import State
from tests.support.fakes import FakeRegistry, FakeRuntime
from tests.support.swarm import NEW, FakeSwarm

A, B = ("sha256:" + c * 64 for c in "ab")
IMG = "127.0.0.1:5000/ns/web:latest"
SOURCES = ("registry", "aliyun")


def cfg(discover: str | None = "labels", watches: list[dict[str, Any]] | None = None, **agent: Any) -> Any:
    table: dict[str, Any] = {"agent": {"state_dir": "/tmp/x", **agent}, "watch": watches or []}
    if discover:
        table["agent"]["discover"] = discover
    return parse(table, {"ALIYUN_ACCESS_KEY_ID": "i", "ALIYUN_ACCESS_KEY_SECRET": "s"})


def listed(name: str, labels: dict[str, str] | None = None, image: str = IMG) -> ListedContainer:
    return ListedContainer("id-" + name, name, image, True, labels or {})


def no_inspect(name: str) -> str:
    raise AssertionError(f"inspected {name}")


def test_labels_mode_watches_only_containers_labelled_enable_true() -> None:
    found = from_listing(
        cfg(),
        [
            listed("on", {"cr-agent.enable": "true"}),
            listed("off"),
            listed("no", {"cr-agent.enable": "false"}),
        ],
        no_inspect,
        SOURCES,
    )
    assert [w.container for w in found.watches] == ["on"]
    (w,) = found.watches
    assert (str(w.image), w.source, w.origin) == (IMG, "registry", "labels")
    assert found.failed == ()


def test_all_mode_watches_everything_but_enable_false_and_skips_images_without_a_registry() -> None:
    found = from_listing(
        cfg("all"),
        [listed("a"), listed("b", {"cr-agent.enable": "false"}), listed("hub", image="busybox:latest")],
        no_inspect,
        SOURCES,
    )
    assert [w.container for w in found.watches] == ["a"]
    assert [(r.container, r.status) for r in found.skipped] == [("hub", Status.SKIPPED)]
    assert "cr-agent.enable=false" in (found.skipped[0].error or "")


def test_no_discover_lists_nothing() -> None:
    rt = FakeRuntime()
    found = discover(cfg(None, [{"container": "x", "image": IMG}]), rt, SOURCES)
    assert found.watches == () and rt.calls["list_containers"] == 0


def test_label_overrides_are_validated_like_config_and_fail_only_their_container() -> None:
    good = {"cr-agent.enable": "true", "cr-agent.strategy": "start-first", "cr-agent.min_uptime": "3s",
            "cr-agent.health.http": "http://127.0.0.1:8080/", "cr-agent.mode": "notify"}  # fmt: skip
    found = from_listing(
        cfg(),
        [
            listed("good", good),
            listed("bad", {"cr-agent.enable": "true", "cr-agent.strategy": "sideways"}),
            listed(
                "worse",
                {"cr-agent.enable": "true", "cr-agent.min_uptime": "soon", "cr-agent.health.tcp": "x"},
            ),
            listed("odd", {"cr-agent.enable": "maybe"}),
        ],
        no_inspect,
        SOURCES,
    )
    (w,) = found.watches
    assert (w.strategy, w.min_uptime, w.mode) == ("start-first", 3.0, "notify")
    assert w.health is not None and w.health.http == "http://127.0.0.1:8080/"
    errors = {r.container: r.error or "" for r in found.failed}
    assert set(errors) == {"bad", "worse", "odd"}
    assert errors["bad"].startswith("label cr-agent.strategy: must be 'stop-first' or 'start-first'")
    assert "label cr-agent.min_uptime:" in errors["worse"] and "label cr-agent.health.tcp:" in errors["worse"]
    assert errors["odd"] == "label cr-agent.enable: expected true or false, got 'maybe'"


def test_a_watch_entry_wins_over_labels() -> None:
    c = cfg(watches=[{"container": "web", "image": "127.0.0.1:5000/ns/web:stable", "strategy": "stop-first"}])
    found = from_listing(
        c, [listed("web", {"cr-agent.enable": "true", "cr-agent.strategy": "bogus"})], no_inspect, SOURCES
    )
    assert found.watches == () and found.failed == ()  # the [[watch]] entry is the whole truth
    assert origins(c.watches[0])["strategy"] == "config"
    assert origins(c.watches[0])["health"] == "default"


def test_image_comes_from_the_image_label_then_the_listing_then_one_inspect() -> None:
    asked: list[str] = []

    def inspect(name: str) -> str:
        asked.append(name)
        return "127.0.0.1:5000/ns/api:v1"

    found = from_listing(
        cfg(),
        [
            listed("labelled", {"cr-agent.enable": "true", "cr-agent.image": "127.0.0.1:5000/ns/db:v2"}),
            listed("by-id", {"cr-agent.enable": "true"}, image="sha256:" + "c" * 64),
            listed("unwatched", image="sha256:" + "d" * 64),
        ],
        inspect,
        SOURCES,
    )
    assert {w.container: str(w.image) for w in found.watches} == {
        "labelled": "127.0.0.1:5000/ns/db:v2",
        "by-id": "127.0.0.1:5000/ns/api:v1",
    }
    assert asked == ["by-id"]  # never an inspect for an unwatched container


def test_origins_name_the_label_that_set_each_setting() -> None:
    found = from_listing(
        cfg(),
        [listed("w", {"cr-agent.enable": "true", "cr-agent.health.tcp": "127.0.0.1:80"})],
        no_inspect,
        SOURCES,
    )
    (w,) = found.watches
    got = origins(w)
    assert got["image"] == "container"
    assert got["health"] == "label cr-agent.health.http, cr-agent.health.tcp"
    assert got["strategy"] == "default"
    assert "labels:" in describe(w) and "health from label" in describe(w)


def test_agent_temporary_names_and_unset_sources_are_not_watched() -> None:
    found = from_listing(
        cfg(),
        [
            listed("web--cr-agent-old", {"cr-agent.enable": "true"}),
            listed("acr", {"cr-agent.enable": "true", "cr-agent.source": "aliyun"}),
        ],
        no_inspect,
        ("registry",),
    )
    assert found.watches == ()
    assert [r.container for r in found.failed] == ["acr"] and "[aliyun]" in (found.failed[0].error or "")


def test_a_pass_lists_containers_once_updates_the_labelled_and_fails_only_the_bad_one(tmp_path: Path) -> None:
    rt = FakeRuntime()
    for name, labels in (
        ("web", {"cr-agent.enable": "true", "cr-agent.min_uptime": "0s"}),
        ("bad", {"cr-agent.enable": "true", "cr-agent.strategy": "nope"}),
        ("plain", {}),
    ):
        cid = rt.add(name, "sha256:" + name[0] * 64, (f"127.0.0.1:5000/ns/web@{A}",), labels=labels)
        rt.containers[cid].image = IMG
    reg = FakeRegistry({"ns/web": {"latest": B}})
    c = parse({"agent": {"state_dir": str(tmp_path), "discover": "labels"}}, {})
    state = State(tmp_path)
    ctx = Context(c, {"registry": reg}, rt, state, Deployer(rt, state, poll=0.01))
    report = reconcile(ctx)
    by = {r.container: r for r in report.results}
    assert set(by) == {"web", "bad"}
    assert by["web"].status is Status.UPDATED
    assert by["bad"].status is Status.FAILED and "cr-agent.strategy" in (by["bad"].error or "")
    assert rt.by_name()["plain"].cloned_from is None
    assert rt.calls["list_containers"] == 2  # discovery, and the dependants of the one updated container
    rt.calls.clear()
    quiet = reconcile(ctx)
    assert {r.container: r.status for r in quiet.results} == {"web": Status.UP_TO_DATE, "bad": Status.FAILED}
    assert rt.calls["list_containers"] == 1 and rt.calls["configured_image"] == 0  # one list per pass


def test_a_tag_label_sets_a_fixed_tag_or_a_pattern() -> None:
    found = from_listing(
        cfg(),
        [
            listed("pattern", {"cr-agent.enable": "true", "cr-agent.tag": "semver:^1.2"}),
            listed("fixed", {"cr-agent.enable": "true", "cr-agent.tag": "stable"}),
            listed("bad", {"cr-agent.enable": "true", "cr-agent.tag": "semver:^^"}),
        ],
        no_inspect,
        SOURCES,
    )
    by = {w.container: w for w in found.watches}
    assert (
        str(by["pattern"].pattern) == "semver:^1.2" and origins(by["pattern"])["tag"] == "label cr-agent.tag"
    )
    assert str(by["fixed"].image) == "127.0.0.1:5000/ns/web:stable" and by["fixed"].pattern is None
    (bad,) = found.failed
    assert bad.container == "bad" and (bad.error or "").startswith(
        "label cr-agent.tag: not an npm-style version range"
    )


def test_services_labelled_enable_true_are_followed_like_service_entries() -> None:
    task = listed("api.1.x", {"cr-agent.enable": "true", SWARM_TASK: "id-api"})  # Swarm's, not ours
    found = from_listing(
        cfg("all"),
        [task],
        no_inspect,
        SOURCES,
        [
            ListedService("api", f"{IMG}@{A}", {"cr-agent.enable": "true", "cr-agent.min_uptime": "3s"}),
            ListedService("off", f"{IMG}@{A}", {"cr-agent.enable": "false"}),
            ListedService(
                "bad", f"{IMG}@{A}", {"cr-agent.enable": "true", "cr-agent.health.http": "http://x/"}
            ),
        ],
    )
    (w,) = found.watches
    assert (w.kind, w.service, str(w.image), w.min_uptime, w.strategy) == (
        "service",
        "api",
        IMG,
        3.0,
        "start-first",
    )
    assert origins(w)["image"] == "service" and describe(w).startswith("service api ← ")
    (bad,) = found.failed
    assert (
        bad.container == "bad" and "cr-agent.health" in (bad.error or "") and "service" in (bad.error or "")
    )


def test_a_pass_updates_a_labelled_service_through_swarm(tmp_path: Path) -> None:
    swarm = FakeSwarm(["updating", "completed"])
    swarm.labels = {"cr-agent.enable": "true"}
    reg = FakeRegistry({"ns/web": {"latest": NEW}})
    c = parse({"agent": {"state_dir": str(tmp_path), "discover": "labels"}}, {})
    state, rt = State(tmp_path), FakeRuntime()
    target = ServiceTarget(swarm, ServiceDeployer(swarm, state, poll=0))
    ctx = Context(c, {"registry": reg}, rt, state, Deployer(rt, state), targets={("service", None): target})
    (r,) = reconcile(ctx).results
    assert (r.container, r.status, r.to_digest) == ("svc", Status.UPDATED, NEW)
    assert swarm.updates == [(f"{IMG}@{NEW}", "start-first")]


def test_a_failed_service_listing_still_discovers_the_containers() -> None:
    rt = FakeRuntime()
    rt.containers[rt.add("web", "sha256:" + "c" * 64, (), labels={"cr-agent.enable": "true"})].image = IMG

    class Worker(FakeSwarm):
        def list_services(self) -> list[ListedService]:
            raise RuntimeFault("docker info: connection refused")

    found = discover(cfg(), rt, SOURCES, Worker([]))
    assert [w.container for w in found.watches] == ["web"] and found.failed == ()


WT = "com.centurylinklabs.watchtower"


def test_watchtower_enable_true_opts_in_under_labels_and_monitor_only_means_notify() -> None:
    found = from_listing(
        cfg(),
        [
            listed("wt", {f"{WT}.enable": "true"}),
            listed("watch-only", {f"{WT}.enable": "true", f"{WT}.monitor-only": "true"}),
            listed("ours-win", {f"{WT}.enable": "true", "cr-agent.enable": "false"}),
            listed("plain", {f"{WT}.monitor-only": "true"}),  # not opted in
        ],
        no_inspect,
        SOURCES,
    )
    got = {w.container: w for w in found.watches}
    assert set(got) == {"wt", "watch-only"} and found.failed == ()
    assert (got["wt"].mode, got["watch-only"].mode) == ("update", "notify")
    assert origins(got["watch-only"])["mode"] == f"label {WT}.monitor-only"
    assert "monitor only" in describe(got["watch-only"])


def test_watchtower_enable_false_opts_out_under_all_and_a_bad_value_names_its_label() -> None:
    found = from_listing(
        cfg("all"),
        [listed("a"), listed("out", {f"{WT}.enable": "false"}), listed("odd", {f"{WT}.enable": "maybe"})],
        no_inspect,
        SOURCES,
    )
    assert [w.container for w in found.watches] == ["a"]
    assert [(r.container, r.error) for r in found.failed] == [
        ("odd", f"label {WT}.enable: expected true or false, got 'maybe'")
    ]


def test_watchtower_hint_names_the_containers_and_what_to_set() -> None:
    from agent.reconcile.discover import watchtower_hint

    assert watchtower_hint([listed("a"), listed("b", {"cr-agent.enable": "true"})]) is None
    hint = watchtower_hint([listed("old", {f"{WT}.enable": "true"}), listed("b")])
    assert hint is not None and "(old)" in hint and 'discover = "labels"' in hint
