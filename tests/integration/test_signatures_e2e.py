"""End to end on the real engine: with [signatures], `agent once` deploys only digests a trusted key
signed (docs/signatures.md). The signatures are written into the real registry by our test signer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import World, by_container, world_fixture
from tests.support.cosign_signer import Signer


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def keys_section(*paths: Path) -> str:
    return "[signatures]\npublic_keys = [" + ", ".join(f'"{p}"' for p in paths) + "]\n"


def test_only_a_digest_signed_by_a_trusted_key_is_deployed(world: World) -> None:
    ours, theirs = Signer(), Signer()
    key = ours.write_public(world.tmp / "cosign.pub")
    repo = f"{world.ns}/web"
    d1 = world.push_image("v1")
    ours.push(repo, d1)
    app, free = world.run("app"), world.run("free")
    d2 = world.push_image("v2")
    cfg = world.config(
        [{"container": "app", "image": world.image()},
         {"container": "free", "image": world.image(), "signatures": False}],
        extra=keys_section(key),
    )  # fmt: skip

    def once() -> tuple[dict[str, dict[str, object]], str]:
        code, report, err = world.once(cfg)
        assert code == 0, err
        return by_container(report), err

    # unsigned: not deployed, said why; the opted-out entry is deployed unsigned
    results, err = once()
    r = results[world.prefix + "app"]
    assert (r["status"], r["signature"], r["latest_digest"]) == ("skipped", "unsigned", d2), r
    assert str(r["error"]).startswith("unsigned: no signature: no sha256-") and ".sig tag" in str(r["error"])
    assert world.container("app")["Id"] == app.id
    f = results[world.prefix + "free"]
    assert f["status"] == "updated" and "signature" not in f, f
    assert d2 in world.running_digests("free") and world.container("free")["Id"] != free.id
    status = world.agent("status", "-c", str(cfg), "--json")
    by_name = {c["container"]: c for c in json.loads(status.stdout)["containers"]}
    assert by_name[world.prefix + "app"]["signature"] == {"running": "unsigned", "latest": "unsigned"}
    assert by_name[world.prefix + "free"]["signature"] is None  # needs none
    assert f"latest    {d2}  unsigned" in world.agent("status", "-c", str(cfg)).stdout

    # signed by a key the agent does not trust
    theirs.push(repo, d2)
    r = once()[0][world.prefix + "app"]
    assert (r["status"], r["signature"]) == ("skipped", "untrusted"), r
    assert r["error"] == "signature not trusted: 1 signature, none by a trusted key"

    # a trusted signature of d1 replayed under d2's tag
    ours.push(repo, d2, signed_digest=d1)
    r = once()[0][world.prefix + "app"]
    assert (r["status"], r["signature"]) == ("skipped", "untrusted"), r
    assert "2 signatures, by a trusted key but a signature for " + d1 in str(r["error"])
    assert "digest mismatch" in str(r["error"])
    assert world.container("app")["Id"] == app.id

    # not quarantined: CI signs a moment later, and the next pass deploys it
    ours.push(repo, d2)
    r = once()[0][world.prefix + "app"]
    assert (r["status"], r["signature"], r["error"]) == ("updated", "verified", None), r
    assert d2 in world.running_digests("app")
    assert world.agent("status", "-c", str(cfg)).returncode == 0


def test_rollback_to_an_unsigned_digest_is_refused_without_force(world: World) -> None:
    ours = Signer()
    key = ours.write_public(world.tmp / "cosign.pub")
    repo = f"{world.ns}/web"
    d1 = world.push_image("v1")  # never signed
    world.run("app")
    d2 = world.push_image("v2")
    ours.push(repo, d2)
    cfg = world.config([{"container": "app", "image": world.image()}], extra=keys_section(key))
    code, report, err = world.once(cfg)
    assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "updated", err

    done = world.agent("rollback", world.prefix + "app", "--to", d1, "-c", str(cfg), "--json")
    assert done.returncode == 1, done.stderr
    assert f"{d1} is not deployed: unsigned: no signature" in done.stderr and "--force" in done.stderr
    assert d2 in world.running_digests("app")
    status = world.agent("status", "-c", str(cfg), "--json")
    assert '"pinned": null' in status.stdout  # nothing was pinned

    done = world.agent("rollback", world.prefix + "app", "--to", d1, "-c", str(cfg), "--json", "--force")
    assert done.returncode == 0, done.stderr
    assert d1 in world.running_digests("app")


def test_agent_check_lists_the_keys_and_refuses_bad_ones(world: World) -> None:
    signer = Signer()
    good, private = (
        signer.write_public(world.tmp / "cosign.pub"),
        signer.write_private(world.tmp / "cosign.key"),
    )
    watches = [
        {"container": "app", "image": world.image()},
        {"container": "free", "image": world.image(), "signatures": False},
    ]
    done = world.agent("check", "--config-only", "-c", str(world.config(watches, extra=keys_section(good))))
    assert done.returncode == 0, done.stderr  # the file alone: the two containers need not exist
    assert f"signature key {good}: ECDSA P-256 sha256:" in done.stdout
    assert f"without a signature: {world.prefix}free" in done.stdout
    done = world.agent(
        "check", "-c", str(world.config(watches, extra=keys_section(private, world.tmp / "nope.pub")))
    )
    assert done.returncode == 2
    assert f"signatures.public_keys[0]: {private}: this is a private key" in done.stderr
    assert f"signatures.public_keys[1]: {world.tmp / 'nope.pub'}: cannot read the public key" in done.stderr
    done = world.agent("once", "-c", str(world.config(watches, extra=keys_section(private))))
    assert done.returncode == 2 and "private key" in done.stderr  # no pass runs on a bad key


def test_a_webhook_pass_checks_signatures_like_every_pass(world: World) -> None:
    from tests.integration.test_webhook_e2e import start
    from tests.support.payloads import acr_payload

    signer = Signer()
    key = signer.write_public(world.tmp / "cosign.pub")
    world.push_image("v1")
    app = world.run("app")
    d = start(world, [{"container": "app", "image": world.image()}], extra=keys_section(key))
    d2 = world.push_image("v2")
    assert d.hook(acr_payload(world.ns, "web")).status == 202
    h = d.wait_passes(2)
    assert h["last_pass"]["results"] == {world.prefix + "app": "skipped"}, h
    assert world.container("app")["Id"] == app.id and "unsigned: no signature" in d.log()
    signer.push(f"{world.ns}/web", d2)  # CI signs a moment later; the next hook deploys it
    assert d.hook(acr_payload(world.ns, "web")).status == 202
    h = d.wait_passes(3)
    assert h["last_pass"]["results"] == {world.prefix + "app": "updated"}, h
    assert d2 in world.running_digests("app")
    d.stop()
