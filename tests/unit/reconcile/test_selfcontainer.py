"""The agent finds its own container and never replaces it from inside: skip, or hand it to a helper."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import parse
from agent.errors import ConfigError, RuntimeFault
from agent.model import Status
from agent.reconcile import selfcontainer
from agent.reconcile.run import Context, reconcile
from tests.support.fakes import FakeRegistry, FakeRuntime
from tests.unit.reconcile.test_plan import A, B, single

CID = "4f" * 32
MOUNTINFO = (
    "613 540 0:52 / / rw,relatime master:287 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X\n"
    f"622 613 254:1 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw\n"
    f"623 613 254:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw\n"
)


def proc(tmp_path: Path, mountinfo: str = "", cgroup: str = "0::/\n") -> Path:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(cgroup)
    return tmp_path


def test_own_id_from_mountinfo(tmp_path: Path) -> None:
    assert selfcontainer.own_container_id(proc(tmp_path, MOUNTINFO), "web", tmp_path / "none") == CID


@pytest.mark.parametrize("cgroup", [f"12:memory:/docker/{CID}\n", f"0::/system.slice/docker-{CID}.scope\n"])
def test_own_id_from_cgroup_v1_or_systemd_driver(tmp_path: Path, cgroup: str) -> None:
    p = proc(tmp_path, "1 0 0:1 / / rw - overlay overlay rw\n", cgroup)
    assert selfcontainer.own_container_id(p, "web", tmp_path / "none") == CID


def test_own_id_from_docker_hostname_only_inside_docker(tmp_path: Path) -> None:
    p = proc(tmp_path)
    dockerenv = tmp_path / ".dockerenv"
    assert selfcontainer.own_container_id(p, CID[:12], dockerenv) is None  # a host named like an id
    dockerenv.touch()
    assert selfcontainer.own_container_id(p, CID[:12], dockerenv) == CID[:12]
    assert selfcontainer.own_container_id(p, "my-host", dockerenv) is None


def test_on_a_host_there_is_no_own_container(tmp_path: Path) -> None:
    p = proc(tmp_path, "22 1 0:21 / / rw - ext4 /dev/vda1 rw\n", "0::/user.slice/session-3.scope\n")
    assert selfcontainer.own_container_id(p, "debian", tmp_path / "none") is None


def own_world(tmp_path: Path, self_update: bool) -> tuple[FakeRuntime, Context]:
    rt = FakeRuntime()
    rt.add("other", "sha256:" + "2" * 64, ())
    cid = rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    ctx = single(tmp_path, FakeRegistry({"ns/web": {"latest": B}}), rt)
    ctx.config = replace(ctx.config, agent=replace(ctx.config.agent, self_update=self_update))
    ctx.self_id = cid
    return rt, ctx


def test_self_update_is_off_unless_set() -> None:
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "i", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s"}
    watch = [{"container": "web", "image": "registry.cn-hangzhou.aliyuncs.com/ns/web"}]
    assert parse({"watch": watch}, env).agent.self_update is False
    assert parse({"agent": {"self_update": True}, "watch": watch}, env).agent.self_update is True
    with pytest.raises(ConfigError, match="agent.self_update: expected"):
        parse({"agent": {"self_update": "yes"}, "watch": watch}, env)


def test_own_container_is_skipped_with_a_clear_message_by_default(tmp_path: Path) -> None:
    rt, ctx = own_world(tmp_path, self_update=False)
    started: list[str] = []
    ctx.start_helper = started.append
    (r,) = reconcile(ctx).results
    assert (
        r.status is Status.SKIPPED and "own container" in (r.error or "") and "self_update" in (r.error or "")
    )
    assert rt.calls["pull"] == 0 and rt.calls["stop"] == 0 and started == []


def test_own_container_is_handed_to_the_helper_with_self_update(tmp_path: Path) -> None:
    rt, ctx = own_world(tmp_path, self_update=True)
    started: list[str] = []
    ctx.start_helper = lambda name: started.append(name) or "a--cr-agent-self-update"
    (r,) = reconcile(ctx).results
    assert started == ["a"] and r.status is Status.SKIPPED
    assert r.self_update == "a--cr-agent-self-update"
    assert rt.calls["pull"] == 0 and rt.calls["stop"] == 0  # the helper does it, after this pass


def test_helper_that_cannot_start_fails_the_entry_and_touches_nothing(tmp_path: Path) -> None:
    rt, ctx = own_world(tmp_path, self_update=True)

    def broken(name: str) -> str:
        raise RuntimeFault("start the helper: no such image")

    ctx.start_helper = broken
    (r,) = reconcile(ctx).results
    assert r.status is Status.FAILED and "no such image" in (r.error or "")
    assert rt.calls["stop"] == 0


def test_the_own_container_warning_is_logged_once_not_every_pass(tmp_path: Path) -> None:
    from loguru import logger

    rt, ctx = own_world(tmp_path, self_update=False)
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        for _ in range(3):
            (r,) = reconcile(ctx).results
            assert r.status is Status.SKIPPED and "own container" in (
                r.error or ""
            )  # the report says it each pass
    finally:
        logger.remove(sink)
    assert len([ln for ln in lines if "own container" in ln]) == 1, lines


def test_undo_and_retry_commands_name_docker_exec_when_the_agent_runs_in_a_container() -> None:
    from agent.notify.text import Item, body

    assert selfcontainer.agent_command(None) == "agent"
    assert selfcontainer.agent_command("cr-agent") == "docker exec cr-agent agent"
    items = [
        Item("updated", "web", "h.io/ns/web:v2", A, B),
        Item("rolled_back", "api", "h.io/ns/api:v2", A, B),
    ]
    text = body(items, "en", markdown=True, agent=selfcontainer.agent_command("cr-agent"))
    assert "undo: `docker exec cr-agent agent rollback web`" in text
    assert "retry: `docker exec cr-agent agent retry api`" in text
