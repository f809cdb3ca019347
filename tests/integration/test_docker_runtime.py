"""DockerRuntime against the real Docker Engine and the local registry."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import APIError
from docker.types import LogConfig, Mount, Ulimit

from agent.errors import RuntimeFault
from agent.runtimes.docker import DockerRuntime
from tests.support import env
from tests.support import images as img
from tests.support.wait import wait_until

CREDS = (env.REGISTRY_USER, env.REGISTRY_PASSWORD)
MiB = 1024 * 1024
SLEEP = ["sleep", "3600"]


@dataclass(frozen=True)
class Images:
    repo: str  # host/ns/name
    path: str  # ns/name
    v1: str  # host/ns/name:v1 (present locally)
    v1_id: str
    v1_digest: str
    v2_id: str
    v2_digest: str

    @property
    def v2_at(self) -> str:
        return f"{self.repo}@{self.v2_digest}"


def _build(tag: str, version: str) -> str:
    return img.build_http_image(
        tag,
        f"marker-{version}",
        cmd=["sh", "-c", f"echo started-{version}; exec httpd -f -p 8080 -h /www"],
        env={"IMG_VERSION": version, "GREETING": f"hello-{version}"},
        labels={"org.example.image": version},
        volumes=["/anon"],
        healthcheck=f'--interval=1s --timeout=2s --retries={2 if version == "v1" else 3} CMD ["test","-f","/marker"]',
        workdir="/www" if version == "v1" else "/tmp",
        stop_signal="SIGTERM" if version == "v1" else "SIGINT",
    )


@pytest.fixture(scope="module")
def images(module_prefix: str, docker_client: docker.DockerClient) -> Images:
    """v1 and v2 pushed to the registry; v2 is removed locally so the agent must pull it."""
    path = f"crtest/{module_prefix}web"
    repo = f"{env.REGISTRY}/{path}"
    ids, digests = {}, {}
    for version in ("v1", "v2"):
        ids[version] = _build(f"{repo}:{version}", version)
        digests[version] = img.push(f"{repo}:{version}", docker_client)
        assert img.registry_digest(path, version) == digests[version]
    docker_client.api.remove_image(f"{repo}:v2")
    return Images(repo, path, f"{repo}:v1", ids["v1"], digests["v1"], ids["v2"], digests["v2"])


@pytest.fixture
def v2(runtime: DockerRuntime, images: Images) -> str:
    """Pull v2 by digest with credentials, as the agent does; return the reference."""
    assert runtime.pull(images.v2_at, CREDS) == images.v2_id
    return images.v2_at


def create(client: docker.DockerClient, name: str, image: str, *, start: bool = True, **kw: Any) -> str:
    """Create (and start) a container with low-level options; host options go in `host`."""
    host = client.api.create_host_config(**{"init": True, **kw.pop("host", {})})
    cid = str(client.api.create_container(image, name=name, host_config=host, **kw)["Id"])
    if start:
        client.api.start(cid)
    return cid


def make_network(client: docker.DockerClient, name: str, *, subnet: bool = False) -> str:
    """A user-defined bridge; with `subnet`, a random free 10.x.y.0/24 and its static base."""
    if not subnet:
        client.api.create_network(name, driver="bridge")
        return ""
    for _ in range(30):
        base = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"{base}.0/24")])
        try:
            client.api.create_network(name, driver="bridge", ipam=ipam)
            return base
        except APIError as exc:
            if "overlap" not in str(exc):
                raise
    raise AssertionError("no free 10.x.y.0/24 subnet")


def names(runtime: DockerRuntime, prefix: str) -> list[str]:
    """This test's containers in any state: what a half-done clone would leave."""
    return sorted(c.name for c in runtime.list_containers() if c.name.startswith(prefix))


def inspect(client: docker.DockerClient, name: str) -> dict[str, Any]:
    return dict(client.api.inspect_container(name))


def exec_out(client: docker.DockerClient, name: str, cmd: str, user: str = "") -> str:
    res = client.containers.get(name).exec_run(["sh", "-c", cmd], user=user)
    assert res.exit_code == 0, f"{cmd!r} failed in {name}: {res.output!r}"
    return bytes(res.output).decode()


MISSING = "<missing>"


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Field-by-field differences between two inspect fragments, as readable lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += diff(old.get(key, MISSING), new.get(key, MISSING), f"{path}.{key}" if path else key)
        return out
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def assert_no_diff(lines: list[str], what: str) -> None:
    assert not lines, f"{what} changed:\n  " + "\n  ".join(lines)


def mounts(data: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {m["Destination"]: (m["Type"], m.get("Name") or m["Source"], m["RW"]) for m in data["Mounts"]}


def networks(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    short = data["Id"][:12]
    return {
        name: {
            "Aliases": sorted(a for a in ep.get("Aliases") or [] if a != short),
            "IPAMConfig": ep.get("IPAMConfig") or None,
            "Links": ep.get("Links"),
        }
        for name, ep in data["NetworkSettings"]["Networks"].items()
    }


def env_map(data: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in data["Config"]["Env"])


def replace(rt: DockerRuntime, name: str, image: str) -> str:
    """What the agent does: rename old, clone, stop old, start new, remove old."""
    old = f"{name}-old"
    rt.rename(name, old)
    new_id = rt.clone(old, name, image)
    rt.stop(old)
    rt.start(name)
    rt.remove(old)
    return new_id


def _rich_container(
    client: docker.DockerClient, prefix: str, images: Images, bind_dir: Path
) -> tuple[str, int]:
    front, back, web = f"{prefix}front", f"{prefix}back", f"{prefix}web"
    base = make_network(client, front, subnet=True)
    make_network(client, back)
    create(client, f"{prefix}db", images.v1, host={"network_mode": back})
    port = img.free_port()
    host = {
        "binds": {
            str(bind_dir): {"bind": "/bind", "mode": "rw"},
            f"{prefix}named": {"bind": "/named", "mode": "rw"},
        },
        "mounts": [Mount(target="/anon2", source=None, type="volume")],
        "port_bindings": {8080: ("127.0.0.1", port)},
        "tmpfs": {"/run": "size=1m"},
        "network_mode": front,
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "mem_limit": "64m",
        "nano_cpus": 500_000_000,
        "cpu_shares": 512,
        "pids_limit": 64,
        "devices": ["/dev/null:/dev/xnull:rwm"],
        "cap_add": ["NET_ADMIN"],
        "cap_drop": ["MKNOD"],
        "security_opt": ["no-new-privileges:true"],
        "log_config": LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"}),
        "extra_hosts": {"db.local": "10.9.8.7"},
        "dns": ["10.0.0.53"],
        "dns_search": ["example.test"],
        "dns_opt": ["ndots:2"],
        "ulimits": [Ulimit(name="nofile", soft=1024, hard=2048)],
        "sysctls": {"net.core.somaxconn": "1024"},
        "group_add": ["100"],
        "shm_size": "16m",
        "oom_score_adj": 100,
        "read_only": True,
    }
    net = client.api.create_networking_config(
        {front: client.api.create_endpoint_config(aliases=["web-front"], ipv4_address=f"{base}.50")}
    )
    create(
        client,
        web,
        images.v1,
        start=False,
        host=host,
        networking_config=net,
        entrypoint=["/bin/busybox"],
        command=["httpd", "-f", "-p", "8080", "-h", "/www"],
        environment={"APP_MODE": "prod", "GREETING": "custom"},
        labels={
            "com.docker.compose.project": "shop",
            "com.docker.compose.service": "web",
            "com.docker.compose.config-hash": "abc123",
            "app.tier": "front",
        },
        user="1000:1000",
        working_dir="/srv",
        hostname="web-host",
        domainname="example.test",
        ports=[8080],
        volumes=["/anon3"],
        healthcheck={
            "test": ["CMD", "test", "-s", "/www/index.html"],
            "interval": 500_000_000,
            "timeout": 2_000_000_000,
            "retries": 3,
            "start_period": 1_000_000_000,
        },
        stop_signal="SIGINT",
        stop_timeout=7,
        tty=True,
        stdin_open=True,
    )
    client.api.connect_container_to_network(
        web, back, aliases=["web-back"], links={f"{prefix}db": "database"}
    )
    client.api.start(web)
    return web, port


# Items set explicitly on the rich container, checked on the replacement.
RICH_EXPECTED = {
    "Config.User": "1000:1000",
    "Config.WorkingDir": "/srv",
    "Config.Hostname": "web-host",
    "Config.Domainname": "example.test",
    "Config.Entrypoint": ["/bin/busybox"],
    "Config.Cmd": ["httpd", "-f", "-p", "8080", "-h", "/www"],
    "Config.StopSignal": "SIGINT",
    "Config.StopTimeout": 7,
    "Config.Tty": True,
    "Config.OpenStdin": True,
    "Config.Healthcheck.Interval": 500_000_000,
    "Config.ExposedPorts": {"8080/tcp": {}},
    "HostConfig.Init": True,
    "HostConfig.Memory": 64 * MiB,
    "HostConfig.NanoCpus": 500_000_000,
    "HostConfig.CpuShares": 512,
    "HostConfig.PidsLimit": 64,
    "HostConfig.RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
    "HostConfig.Devices": [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rwm"}
    ],
    "HostConfig.SecurityOpt": ["no-new-privileges:true"],
    "HostConfig.LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}},
    "HostConfig.ExtraHosts": ["db.local:10.9.8.7"],
    "HostConfig.Dns": ["10.0.0.53"],
    "HostConfig.DnsSearch": ["example.test"],
    "HostConfig.DnsOptions": ["ndots:2"],
    "HostConfig.Tmpfs": {"/run": "size=1m"},
    "HostConfig.Sysctls": {"net.core.somaxconn": "1024"},
    "HostConfig.GroupAdd": ["100"],
    "HostConfig.ShmSize": 16 * MiB,
    "HostConfig.OomScoreAdj": 100,
    "HostConfig.ReadonlyRootfs": True,
}


def _get(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        data = data.get(key, MISSING) if isinstance(data, dict) else MISSING
    return data


def unmet(data: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return [f"{k}: expected {v!r}, got {_get(data, k)!r}" for k, v in expected.items() if _get(data, k) != v]


def without(data: dict[str, Any], keys: Any) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def test_replace_keeps_whole_configuration_and_volume_data(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str, tmp_path: Path
) -> None:
    """Rename, clone with v2, stop, start, remove: every setting, network and volume byte survives."""
    (tmp_path / "f").write_text("bind-data\n")
    web, port = _rich_container(docker_client, prefix, images, tmp_path)
    exec_out(docker_client, web, "for d in named anon anon2 anon3; do echo $d-data > /$d/f; done", user="0")
    before = inspect(docker_client, web)
    assert runtime.pull(images.v2_at, CREDS) == images.v2_id

    new_id = replace(runtime, web, images.v2_at)

    wait_until(lambda: runtime.state(web).health == "healthy", 30, "the replacement to be healthy")  # type: ignore[union-attr]
    after = inspect(docker_client, web)
    assert after["Id"] == new_id and after["Image"] == images.v2_id
    assert_no_diff(unmet(after, RICH_EXPECTED), "explicit settings")
    # Only what the image provides may change: its Env entry and its label; the agent adds cr-agent.image.
    skip = ("Image", "Env", "Labels")
    assert_no_diff(diff(without(before["Config"], skip), without(after["Config"], skip), "Config"), "Config")
    hc_old, hc_new = without(before["HostConfig"], ["Mounts"]), without(after["HostConfig"], ["Mounts"])
    assert_no_diff(diff(hc_old, hc_new, "HostConfig"), "HostConfig")
    assert_no_diff(diff(env_map(before) | {"IMG_VERSION": "v2"}, env_map(after), "Env"), "Env")
    labels = before["Config"]["Labels"] | {
        "org.example.image": "v2",
        "cr-agent.image": before["Config"]["Image"],
    }
    assert_no_diff(diff(labels, after["Config"]["Labels"], "Labels"), "Labels")
    assert_no_diff(diff(mounts(before), mounts(after), "Mounts"), "Mounts")
    assert_no_diff(diff(networks(before), networks(after), "Networks"), "Networks")
    assert networks(after)[f"{prefix}front"]["Aliases"] == ["web-front", "web-host"]
    assert networks(after)[f"{prefix}back"]["Links"] == [f"{prefix}db:database"]
    assert exec_out(docker_client, web, "cat /named/f /anon/f /anon2/f /anon3/f /bind/f", user="0").split() == [
        "named-data", "anon-data", "anon2-data", "anon3-data", "bind-data",
    ]  # fmt: skip
    assert exec_out(docker_client, web, "cat /marker").strip() == "marker-v2"
    assert wait_until(lambda: img.http_get(port), 10, "HTTP on the published port").strip() == "marker-v2"
    assert names(runtime, prefix) == sorted([f"{prefix}db", web])


def test_repeated_replacement_reuses_the_same_anonymous_volumes(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, v2: str, prefix: str
) -> None:
    """Replacing v1 -> v2 -> v1 keeps the image, --mount and -v anonymous volumes and their data."""
    name = f"{prefix}again"
    mount = Mount(target="/anon2", source=None, type="volume")
    create(docker_client, name, images.v1, command=SLEEP, volumes=["/anon3"], host={"mounts": [mount]})
    exec_out(docker_client, name, "for d in anon anon2 anon3; do echo $d-data > /$d/f; done")
    first = mounts(inspect(docker_client, name))
    replace(runtime, name, v2)
    replace(runtime, name, images.v1)
    assert_no_diff(diff(first, mounts(inspect(docker_client, name)), "Mounts"), "Mounts")
    assert exec_out(docker_client, name, "cat /anon/f /anon2/f /anon3/f").split() == [
        "anon-data", "anon2-data", "anon3-data",
    ]  # fmt: skip


def test_inherited_image_defaults_follow_the_new_image(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, v2: str, prefix: str
) -> None:
    """CMD, ENV, LABEL, HEALTHCHECK, WORKDIR and STOPSIGNAL not set by the user come from the new image."""
    name = f"{prefix}plain"
    create(docker_client, name, images.v1, environment={"USER_SET": "yes"}, labels={"mine": "1"})
    replace(runtime, name, v2)
    cfg = inspect(docker_client, name)["Config"]
    v2_cfg = docker_client.api.inspect_image(v2)["Config"]
    for key in ("Cmd", "Entrypoint", "Healthcheck", "WorkingDir", "StopSignal", "ExposedPorts", "Volumes"):
        assert cfg.get(key) == v2_cfg.get(key), key
    assert env_map({"Config": cfg}) == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "IMG_VERSION": "v2",
        "GREETING": "hello-v2",
        "USER_SET": "yes",
    }
    assert cfg["Labels"] == {"org.example.image": "v2", "mine": "1", "cr-agent.image": images.v1}
    assert cfg["Hostname"] == inspect(docker_client, name)["Id"][:12], "default hostname follows the new id"
    wait_until(lambda: "started-v2" in runtime.logs(name), 10, "the new image's CMD to run")


def test_clone_does_not_start_and_source_stays_stopped(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """Cloning a stopped container creates the new one without starting either."""
    src = f"{prefix}stopped"
    create(docker_client, src, images.v1, command=SLEEP)
    runtime.stop(src)
    runtime.clone(src, f"{prefix}copy", images.v1)
    assert runtime.state(src).status == "exited"  # type: ignore[union-attr]
    assert runtime.state(f"{prefix}copy").status == "created"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["host", "none"])
def test_special_network_mode_is_kept(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str, mode: str
) -> None:
    """network_mode host / none survives the replacement and the new container runs."""
    name = f"{prefix}{mode}"
    create(docker_client, name, images.v1, command=SLEEP, host={"network_mode": mode})
    before = inspect(docker_client, name)
    replace(runtime, name, images.v1)
    after = inspect(docker_client, name)
    assert after["HostConfig"]["NetworkMode"] == mode
    assert list(after["NetworkSettings"]["Networks"]) == list(before["NetworkSettings"]["Networks"])
    if mode == "host":
        assert after["Config"]["Hostname"] == before["Config"]["Hostname"]
    assert runtime.state(name).running  # type: ignore[union-attr]


def test_container_network_mode_is_kept(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """network_mode container:<other> survives; the new container joins the same namespace."""
    owner, side = f"{prefix}owner", f"{prefix}side"
    owner_id = create(docker_client, owner, images.v1, command=SLEEP)
    create(docker_client, side, images.v1, command=SLEEP, host={"network_mode": f"container:{owner}"})
    mode = inspect(docker_client, side)["HostConfig"]["NetworkMode"]
    replace(runtime, side, images.v1)
    after = inspect(docker_client, side)
    assert after["HostConfig"]["NetworkMode"] == mode
    assert runtime.state(side).running  # type: ignore[union-attr]
    assert exec_out(docker_client, side, "hostname").strip() == owner_id[:12]


def test_legacy_link_on_default_bridge_is_kept(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """A --link on the default bridge survives the replacement."""
    db, app = f"{prefix}db", f"{prefix}app"
    create(docker_client, db, images.v1, command=SLEEP)
    create(docker_client, app, images.v1, command=SLEEP, host={"links": {db: "database"}})
    replace(runtime, app, images.v1)
    assert inspect(docker_client, app)["HostConfig"]["Links"] == [f"/{db}:/{app}/database"]
    assert "database" in exec_out(docker_client, app, "cat /etc/hosts")


def test_a_container_others_link_to_is_listed_by_its_own_name(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """The engine lists a linked-to container's `/app/alias` names first; a listing names the container."""
    db = f"{prefix}db"
    create(docker_client, db, images.v1, command=SLEEP, labels={"mine": "1"})
    for app in (f"{prefix}a", f"{prefix}b"):
        create(docker_client, app, images.v1, command=SLEEP, host={"links": {db: "database"}})
    mine = [c for c in runtime.list_containers() if c.name.startswith(prefix)]
    assert sorted(c.name for c in mine) == [f"{prefix}a", f"{prefix}b", db]
    assert [c.name for c in runtime.list_containers("mine=1") if c.name.startswith(prefix)] == [db]


def test_clone_with_unknown_image_leaves_no_container(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """A create that fails raises RuntimeFault and leaves nothing behind."""
    src = f"{prefix}src"
    create(docker_client, src, images.v1, command=SLEEP)
    with pytest.raises(RuntimeFault, match=f"create {prefix}new"):
        runtime.clone(src, f"{prefix}new", "sha256:" + "0" * 64)
    assert names(runtime, prefix) == [src]


def test_clone_failing_after_create_removes_the_new_container(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """When connecting a second network fails, the half-made clone is removed."""
    src, flaky = f"{prefix}src", f"{prefix}flaky"
    make_network(docker_client, f"{prefix}keep")
    base = make_network(docker_client, flaky, subnet=True)
    create(docker_client, src, images.v1, start=False, host={"network_mode": f"{prefix}keep"})
    docker_client.api.connect_container_to_network(src, flaky, ipv4_address=f"{base}.7")
    # Recreate the network without a subnet: the engine now refuses the static IP on connect.
    docker_client.api.remove_network(flaky)
    make_network(docker_client, flaky)
    with pytest.raises(RuntimeFault, match=f"connect {prefix}new to network {flaky}"):
        runtime.clone(src, f"{prefix}new", images.v1)
    assert names(runtime, prefix) == [src]


def test_pull_with_wrong_password_hides_the_password(runtime: DockerRuntime, images: Images) -> None:
    """Denied auth raises RuntimeFault naming the reference and never the password."""
    secret = "Wr0ng-S3cret-pw"
    ref = f"{images.repo}@{images.v1_digest}"
    with pytest.raises(RuntimeFault) as info:
        runtime.pull(ref, (env.REGISTRY_USER, secret))
    text = f"{info.value} {info.value!r} {info.value.__cause__} {info.value.__cause__!r}"
    assert ref in str(info.value)
    assert secret not in text


def test_pull_without_credentials_fails_clearly(
    images: Images, dev_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without auth and without a docker config, pulling from the auth-required registry fails clearly."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client = docker.from_env(timeout=60)
    try:
        ref = f"{images.repo}@{images.v1_digest}"
        with pytest.raises(RuntimeFault) as info:
            DockerRuntime(client).pull(ref)
    finally:
        client.close()
    message = str(info.value)
    assert ref in message and ("no basic auth" in message or "unauthorized" in message), message


def test_pull_unknown_digest_names_the_reference(runtime: DockerRuntime, images: Images) -> None:
    """A digest the registry does not have raises RuntimeFault naming the reference."""
    ref = f"{images.repo}@sha256:{'1' * 64}"
    with pytest.raises(RuntimeFault, match=ref.replace(".", r"\.")):
        runtime.pull(ref, CREDS)


def test_inspect_reports_digests_ports_and_static_ip(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """inspect() gives the name, image id, repo digests, running flag, host ports and static IP."""
    assert runtime.inspect(f"{prefix}nothing") is None
    assert runtime.state(f"{prefix}nothing") is None
    base = make_network(docker_client, f"{prefix}net", subnet=True)
    net = docker_client.api.create_networking_config(
        {f"{prefix}net": docker_client.api.create_endpoint_config(ipv4_address=f"{base}.9")}
    )
    host = {"port_bindings": {8080: ("127.0.0.1", None)}, "network_mode": f"{prefix}net"}
    create(docker_client, f"{prefix}a", images.v1, ports=[8080], host=host, networking_config=net)
    create(docker_client, f"{prefix}b", images.v1, command=SLEEP, start=False)
    a, b = runtime.inspect(f"{prefix}a"), runtime.inspect(f"{prefix}b")
    assert a and b
    assert (a.name, a.image_id, a.running) == (f"{prefix}a", images.v1_id, True)
    assert (a.host_ports, a.static_ip) == (True, True)
    assert f"{images.repo}@{images.v1_digest}" in a.repo_digests
    assert (b.running, b.host_ports, b.static_ip) == (False, False, False)
    assert runtime.state(f"{prefix}b").status == "created"  # type: ignore[union-attr]


def test_stop_honours_stop_signal(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """stop() sends the container's own stop signal: the trap exits 0 instead of dying of SIGTERM."""
    name = f"{prefix}sig"
    script = 'trap "exit 0" USR1; echo ready; while :; do sleep 0.1; done'
    create(
        docker_client, name, images.v1, command=["sh", "-c", script], stop_signal="SIGUSR1", stop_timeout=30
    )
    wait_until(lambda: "ready" in runtime.logs(name), 10, "the trap to be set")
    runtime.stop(name)
    assert runtime.state(name).exit_code == 0  # type: ignore[union-attr]


def test_stop_honours_stop_timeout(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """stop() waits the container's StopTimeout (2 s), not the SDK's 10 s, before killing."""
    name = f"{prefix}slow"
    script = 'trap "" TERM; echo ready; while :; do sleep 0.1; done'
    create(docker_client, name, images.v1, command=["sh", "-c", script], stop_timeout=2)
    wait_until(lambda: "ready" in runtime.logs(name), 10, "the trap to be set")
    started = time.monotonic()
    runtime.stop(name)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 8, elapsed
    assert runtime.state(name).exit_code == 137  # type: ignore[union-attr]


def test_remove_forces_and_keeps_volumes(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """remove() force-removes a running container, keeps its anonymous volume, and is idempotent."""
    name = f"{prefix}rm"
    create(docker_client, name, images.v1)
    volume = next(m["Name"] for m in inspect(docker_client, name)["Mounts"] if m["Destination"] == "/anon")
    runtime.remove(name)
    runtime.remove(name)
    assert runtime.inspect(name) is None
    assert docker_client.api.inspect_volume(volume)["Name"] == volume
    docker_client.api.remove_volume(volume)


def test_logs_returns_last_lines_decoded(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """logs(tail) returns the last lines as text, invalid UTF-8 replaced."""
    name = f"{prefix}logs"
    script = r'for i in 1 2 3 4 5; do echo line$i; done; printf "\377bad\n"; sleep 3600'
    create(docker_client, name, images.v1, command=["sh", "-c", script])
    text = wait_until(lambda: (t := runtime.logs(name, tail=3)) and "bad" in t and t, 10, "the log lines")
    assert text == "line4\nline5\n\ufffdbad\n"
    with pytest.raises(RuntimeFault, match="read logs"):
        runtime.logs(f"{prefix}missing")


def test_image_helpers(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """exists_image, image_in_use, tag, remove_image (refuses an image in use) and list_names."""
    extra = f"{env.REGISTRY}/crtest/{prefix}extra"
    runtime.tag(images.v1, extra, "t1")
    assert runtime.exists_image(f"{extra}:t1")
    assert not runtime.exists_image(f"{extra}:nope")
    create(docker_client, f"{prefix}user", images.v1, command=SLEEP, start=False)
    assert runtime.image_in_use(images.v1_id)
    assert not runtime.image_in_use("sha256:" + "2" * 64)
    with pytest.raises(RuntimeFault, match="remove image"):
        runtime.remove_image(images.v1_id)
    runtime.remove_image(f"{extra}:t1")  # only the tag goes
    runtime.remove_image(f"{extra}:t1")  # missing is fine
    assert not runtime.exists_image(f"{extra}:t1") and runtime.exists_image(images.v1_id)
    assert names(runtime, prefix) == [f"{prefix}user"]


def test_inspect_all_finds_many_containers_with_one_list_and_their_digests(
    runtime, prefix, docker_client
) -> None:
    """inspect_all returns the same id, image, digests and running state as inspect, and leaves out missing names."""
    ref = f"{env.REGISTRY}/{prefix}ns/all:v1"
    img.build_image(ref, marker="all", docker_client=docker_client)
    digest = img.push(ref, docker_client)
    docker_client.images.pull(ref, auth_config=img.auth_config())
    a = docker_client.containers.run(ref, ["sleep", "60"], name=prefix + "a", detach=True, init=True)
    docker_client.containers.create(ref, ["true"], name=prefix + "b")
    found = runtime.inspect_all([prefix + "a", prefix + "b", prefix + "missing"])
    assert sorted(found) == [prefix + "a", prefix + "b"]
    assert found[prefix + "a"].id == a.id and found[prefix + "a"].running and not found[prefix + "b"].running
    assert any(d.endswith(digest) for d in found[prefix + "a"].repo_digests)
    full = runtime.inspect(prefix + "a")
    assert full is not None and (full.image_id, full.repo_digests) == (
        found[prefix + "a"].image_id,
        found[prefix + "a"].repo_digests,
    )


def test_clone_labels_find_and_a_broken_containers_state(
    runtime: DockerRuntime, docker_client: docker.DockerClient, images: Images, prefix: str
) -> None:
    """clone adds labels, list_containers(label) lists by label, and inspect / inspect_all say restarting or exited with its code."""
    src = f"{prefix}src"
    create(docker_client, src, images.v1, command=SLEEP, labels={"mine": "1"})
    new_id = runtime.clone(src, f"{prefix}copy", images.v1, labels={"cr-agent.replaces": "x" + prefix})
    (found,) = runtime.list_containers(f"cr-agent.replaces=x{prefix}")
    assert (found.id, found.name, found.running) == (new_id, f"{prefix}copy", False)
    assert found.labels["mine"] == "1" and found.labels["cr-agent.replaces"] == "x" + prefix
    assert runtime.engine_id() == docker_client.info()["ID"]
    create(docker_client, f"{prefix}dies", images.v1, command=["sh", "-c", "exit 3"])
    wait_until(lambda: runtime.state(f"{prefix}dies").status == "exited", 20, "the container to exit")  # type: ignore[union-attr]
    full, listed = runtime.inspect(f"{prefix}dies"), runtime.inspect_all([f"{prefix}dies"])[f"{prefix}dies"]
    assert full is not None and full.broken == listed.broken == "exited, exit code 3"


def test_inspect_all_reads_many_images_from_one_listing_as_from_an_inspect_each(
    prefix: str, docker_client: docker.DockerClient
) -> None:
    """From `image_list_from` distinct images on, inspect_all lists the images once instead of inspecting
    each: the same digests and OCI version labels either way, for an image whose tag moved on and for one
    removed under a stopped container."""
    made = []
    for i in range(4):
        ref = f"{env.REGISTRY}/{prefix}ns/many{i}:v1"
        img.build_image(ref, marker=f"many{i}", labels={"org.opencontainers.image.version": f"1.{i}"})
        img.push(ref, docker_client)
        docker_client.containers.create(ref, ["true"], name=f"{prefix}m{i}")
        made.append(f"{prefix}m{i}")
    img.build_image(f"{env.REGISTRY}/{prefix}ns/many2:v1", marker="moved")  # m2's image: untagged, in use
    docker_client.api.remove_image(f"{env.REGISTRY}/{prefix}ns/many3:v1", force=True)  # m3's: gone
    one_by_one = DockerRuntime(image_list_from=10**6).inspect_all(made)
    listed = DockerRuntime(image_list_from=1).inspect_all(made)
    assert sorted(listed) == made and listed == one_by_one
    assert [(v := listed[n].version) and v.version for n in made] == ["1.0", "1.1", "1.2", None]
    assert [any("@sha256:" in d for d in listed[n].repo_digests) for n in made] == [True, True, True, False]


def test_list_containers_named_asks_the_engine_for_names_containing_a_text(
    runtime: DockerRuntime, prefix: str, docker_client: docker.DockerClient, images: Images
) -> None:
    """The engine filters by name (a regular expression there): `named` is matched as plain text."""
    for name in (f"{prefix}x--cr-agent-old", f"{prefix}x", f"{prefix}y.z"):
        create(docker_client, name, images.v1, start=False)
    assert sorted(c.name for c in runtime.list_containers(named=f"{prefix}x--cr-agent-")) == [
        f"{prefix}x--cr-agent-old"
    ]
    assert [c.name for c in runtime.list_containers(named=f"{prefix}y.")] == [f"{prefix}y.z"]
    assert runtime.list_containers(named=f"{prefix}y*") == []  # not a pattern
