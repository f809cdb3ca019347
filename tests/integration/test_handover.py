"""Start-first's hand-over on the real engine: the drained container keeps its address for late requests."""

from __future__ import annotations

import docker
import pytest

from agent.runtimes.docker import DockerRuntime
from tests.support import env
from tests.support import images as img

HTTPD = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]


def _ip(client: docker.DockerClient, name: str, net: str) -> str:
    return str(client.api.inspect_container(name)["NetworkSettings"]["Networks"][net]["IPAddress"])


def _aliases(client: docker.DockerClient, name: str, net: str) -> set[str]:
    return set(client.api.inspect_container(name)["NetworkSettings"]["Networks"][net]["Aliases"] or [])


@pytest.fixture
def world(prefix: str, docker_client: docker.DockerClient) -> tuple[str, str, str, str]:
    """On network `net`: `old` (v1, alias web), `new` (v2, no alias), and a client; returns their names."""
    ref = f"{env.REGISTRY}/{prefix}ns/web"
    img.build_http_image(f"{ref}:v1", "v1", cmd=HTTPD, docker_client=docker_client)
    img.build_http_image(f"{ref}:v2", "v2", cmd=HTTPD, docker_client=docker_client)
    net = docker_client.networks.create(prefix + "net").name
    old = docker_client.containers.create(f"{ref}:v1", name=prefix + "old", network=net)
    docker_client.networks.get(net).disconnect(old)
    docker_client.networks.get(net).connect(old, aliases=["web"])
    old.start()
    docker_client.containers.run(f"{ref}:v2", name=prefix + "new", network=net, detach=True)
    docker_client.containers.run(
        f"{ref}:v1", ["sleep", "600"], name=prefix + "client", network=net, detach=True
    )
    return str(net), old.name, prefix + "new", prefix + "client"


def _in(client: docker.DockerClient, name: str, script: str) -> str:
    code, out = client.containers.get(name).exec_run(["sh", "-c", script])
    return f"{code} {out.decode().strip()}"


def test_drain_takes_the_alias_away_but_the_old_address_still_answers(
    docker_client: docker.DockerClient, world: tuple[str, str, str, str]
) -> None:
    net, old, new, client = world
    rt = DockerRuntime(docker_client, drain_grace=0)
    address = _ip(docker_client, old, net)
    rt.publish(new, old)
    assert "web" in _aliases(docker_client, new, net)
    rt.drain(old)
    assert "web" not in _aliases(docker_client, old, net)
    lookup = _in(
        docker_client, client, "nslookup web 127.0.0.11 | awk '/^Name:/{f=1} f&&/^Address/{print $2}'"
    )
    assert lookup == f"0 {_ip(docker_client, new, net)}", "the alias names only the new container"
    # A client that resolved `web` to the old container an instant before it left still gets an answer:
    # the old container is back on the network at the same address (Docker's lowest free one).
    assert _ip(docker_client, old, net) == address
    assert _in(docker_client, client, f"timeout 5 wget -q -O- http://{address}:8080/") == "0 v1"

    rt.publish(new, old)  # what recovery after a crash at this point does again: the aliases stay
    assert "web" in _aliases(docker_client, new, net)


def test_the_service_name_resolves_while_the_two_containers_swap_names(
    docker_client: docker.DockerClient, world: tuple[str, str, str, str]
) -> None:
    net, old, new, client = world
    rt = DockerRuntime(docker_client, drain_grace=0)
    rt.publish(new, old)
    rt.drain(old)
    docker_client.api.rename(old, old + "--cr-agent-old")  # the moment the name belongs to nobody
    lookup = _in(
        docker_client,
        client,
        f"timeout 3 nslookup {old} 127.0.0.11 | awk '/^Name:/{{f=1}} f&&/^Address/{{print $2}}'",
    )
    code, _, answers = lookup.partition(" ")
    # Never empty: the new container answers to the name by alias. Under load Docker's DNS may still
    # list the renamed old one for an instant; it keeps answering through its drain grace.
    assert code == "0" and _ip(docker_client, new, net) in answers.split(), lookup
