"""Signatures in a pass: config and labels, the gate before every pull (containers and Swarm services),
verified digests remembered, refusals told once, and tag patterns that never pick a cosign tag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import parse
from agent.config.patterns import newest
from agent.config.patterns import parse as pattern
from agent.deploy import Deployer
from agent.deploy.service import ServiceDeployer
from agent.errors import ConfigError
from agent.model import Report, Result, Status
from agent.notify.book import NoticeBook
from agent.notify.send import Notifier
from agent.notify.text import body
from agent.reconcile.discover import from_listing
from agent.reconcile.run import Context, reconcile
from agent.reconcile.targets import ServiceTarget
from agent.runlock import EngineLock
from agent.runtimes import ListedContainer
from agent.state import State
from tests.support.cosign_signer import MemoryStore, Signer
from tests.support.fakes import FakeRegistry, FakeRuntime
from tests.support.swarm import NEW, OLD, FakeSwarm

A, B = OLD, NEW
IMG = "127.0.0.1:5000/ns/web:latest"


def config(
    tmp_path: Path, keys: list[Path] | None, watches: list[dict[str, Any]] | None = None, **agent: Any
) -> Any:
    table: dict[str, Any] = {"agent": {"state_dir": str(tmp_path / "state"), **agent},
                             "watch": watches if watches is not None else [{"container": "web", "image": IMG, "min_uptime": "0s"}]}  # fmt: skip
    if keys is not None:
        table["signatures"] = {"public_keys": [str(k) for k in keys]}
    return parse(table, {})


def problems(tmp_path: Path, table: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse({"agent": {"state_dir": str(tmp_path)}, **table}, {})
    return e.value.problems


def test_bad_keys_are_config_errors_each_with_a_clear_message(tmp_path: Path) -> None:
    signer = Signer()
    private = signer.write_private(tmp_path / "cosign.key")
    (tmp_path / "x.pub").write_text("not a key")
    got = problems(tmp_path, {
        "signatures": {"public_keys": [str(tmp_path / "missing.pub"), str(private), str(tmp_path / "x.pub")]},
        "watch": [{"container": "web", "image": IMG}],
    })  # fmt: skip
    assert got[0].startswith("signatures.public_keys[0]: ") and "cannot read the public key" in got[0]
    assert got[1].startswith("signatures.public_keys[1]: ") and "this is a private key" in got[1]
    assert got[2].startswith("signatures.public_keys[2]: ") and "not a PEM public key" in got[2]
    assert problems(
        tmp_path, {"signatures": {"public_keys": []}, "watch": [{"container": "w", "image": IMG}]}
    ) == ["signatures.public_keys: empty: list at least one public key, or remove [signatures]"]
    pub = signer.write_public(tmp_path / "cosign.pub")
    got = problems(tmp_path, {"watch": [
        {"container": "a", "image": IMG, "signature_identity": "host"},
        {"container": "b", "image": IMG, "signatures": False, "public_keys": [str(pub)]},
        {"container": "c", "image": IMG, "public_keys": [str(private)]},
    ]})  # fmt: skip
    assert got[0] == "watch[0].signature_identity: must be 'repository' or 'any', got 'host'"
    assert got[1] == "watch[1].public_keys: given with signatures = false: remove one of them"
    assert got[2].startswith("watch[2].public_keys[0]: ") and "private key" in got[2]


def test_which_keys_an_entry_needs(tmp_path: Path) -> None:
    pub, other = Signer().write_public(tmp_path / "a.pub"), Signer().write_public(tmp_path / "b.pub")
    cfg = config(tmp_path, [pub], [
        {"container": "a", "image": IMG}, {"container": "b", "image": IMG, "signatures": False},
        {"container": "c", "image": IMG, "public_keys": [str(other)]},
    ])  # fmt: skip
    assert [cfg.trusted_keys(w) for w in cfg.watches] == [(str(pub),), (), (str(other),)]
    assert config(tmp_path, None).trusted_keys(config(tmp_path, None).watches[0]) == ()


def test_the_label_signatures_false_opts_a_container_out(tmp_path: Path) -> None:
    pub = Signer().write_public(tmp_path / "a.pub")
    cfg = config(tmp_path, [pub], [], discover="labels")
    labels = [{"cr-agent.enable": "true", "cr-agent.signatures": "false"}, {"cr-agent.enable": "true"},
              {"cr-agent.enable": "true", "cr-agent.signatures": "maybe"}]  # fmt: skip
    found = from_listing(cfg, [ListedContainer(f"id{i}", f"c{i}", IMG, True, lab) for i, lab in enumerate(labels)],
                         lambda n: IMG, ("registry",))  # fmt: skip
    assert [(w.container, w.signatures) for w in found.watches] == [("c0", False), ("c1", True)]
    assert [r.container for r in found.failed] == ["c2"] and "cr-agent.signatures" in (
        found.failed[0].error or ""
    )


def context(
    tmp_path: Path, cfg: Any, store: MemoryStore, rt: FakeRuntime | None = None, **kw: Any
) -> Context:
    rt = rt or FakeRuntime()
    state = State(tmp_path / "state")
    reg = FakeRegistry({"ns/web": {"latest": B}})
    deployer = Deployer(
        rt, state, poll=0.01, engine_lock=EngineLock((tmp_path,))
    )  # not shared with other runs
    return Context(cfg, {"registry": reg}, rt, state, deployer,
                   signature_reader=lambda w, auth: store, **kw)  # fmt: skip


def test_a_pass_deploys_only_a_signed_digest_and_remembers_it(tmp_path: Path) -> None:
    signer, store = Signer(), MemoryStore()
    cfg = config(tmp_path, [signer.write_public(tmp_path / "a.pub")], [
        {"container": "web", "image": IMG, "min_uptime": "0s", "source": "registry"},
        {"container": "two", "image": IMG, "min_uptime": "0s", "source": "registry"},
    ])  # fmt: skip
    rt = FakeRuntime()
    for name in ("web", "two"):
        rt.add(name, "sha256:" + "1" * 64, (f"127.0.0.1:5000/ns/web@{A}",))
    ctx = context(tmp_path, cfg, store, rt)
    assert {r.status for r in reconcile(ctx, dry_run=True).results} == {Status.WOULD_UPDATE}
    assert store.fetches == []  # nor does a dry run: only a digest about to be deployed is checked
    results = {r.container: r for r in reconcile(ctx).results}
    assert {n: (r.status, r.signature) for n, r in results.items()} == {
        "web": (Status.SKIPPED, "unsigned"), "two": (Status.SKIPPED, "unsigned")}  # fmt: skip
    assert ctx.state.quarantined("web") == {} and rt.calls["pull"] == 0
    store.add(signer, "ns/web", B)
    store.fetches.clear()
    results = {r.container: r for r in reconcile(ctx).results}
    assert {n: (r.status, r.signature) for n, r in results.items()} == {
        "web": (Status.UPDATED, "verified"), "two": (Status.UPDATED, "verified")}  # fmt: skip
    assert len([f for f in store.fetches if "/manifests/" in f]) == 1  # the second entry asked state
    store.fetches.clear()
    assert {r.status for r in reconcile(ctx).results} == {Status.UP_TO_DATE}
    assert store.fetches == []  # a quiet pass reads no signature
    assert ctx.state.signature_verified("127.0.0.1:5000/ns/web", B, {"nope"}, "repository") is None


def test_a_swarm_service_is_not_updated_with_an_unsigned_digest(tmp_path: Path) -> None:
    store, swarm = MemoryStore(), FakeSwarm(["updating", "completed"])
    cfg = config(tmp_path, [Signer().write_public(tmp_path / "a.pub")],
                 [{"service": "svc", "image": IMG, "source": "registry"}])  # fmt: skip
    state = State(tmp_path / "state")
    target = ServiceTarget(swarm, ServiceDeployer(swarm, state, poll=0))
    ctx = context(tmp_path, cfg, store, targets={("service", None): target})
    (r,) = reconcile(ctx).results
    assert (r.status, r.signature, r.to_digest) == (Status.SKIPPED, "unsigned", B)
    assert swarm.updates == []


def test_a_refused_digest_is_told_once_in_both_languages(tmp_path: Path) -> None:
    from agent.config import NotifySettings

    n = Notifier(NotifySettings(("json://127.0.0.1:1/x",)), NoticeBook(tmp_path))
    r = Result(
        "web",
        IMG,
        Status.SKIPPED,
        A,
        B,
        "unsigned: no signature: no sha256-bbbb.sig tag",
        signature="unsigned",
    )
    (item,) = n.select(Report((r,)))
    assert n.select(Report((r,))) == []  # the next pass, same digest: quiet
    assert "镜像未签名，未部署" in body([item], "zh", markdown=False)
    assert "image not signed, not deployed" in body([item], "en", markdown=False)
    assert "no sha256-bbbb.sig tag" in body([item], "en", markdown=False)
    untrusted = Result(
        "web", IMG, Status.SKIPPED, A, B, "signature not trusted: 1 signature", signature="untrusted"
    )
    assert len(n.select(Report((untrusted,)))) == 1  # what was found changed: told again


def test_tag_patterns_never_pick_a_cosign_tag() -> None:
    from agent.choices import Sort
    from agent.config.patterns import matches

    sig = "sha256-" + "b" * 64
    tags = [("1.0.0", 1.0), (f"{sig}.sig", 5.0), (f"{sig}.att", 6.0), (f"{sig}.sbom", 7.0)]
    assert newest(pattern(None, ".*", Sort.TIME), tags, None) == "1.0.0"  # the newest push is a signature
    assert newest(pattern(None, r"^sha256-", Sort.TIME), tags, None) is None
    assert not matches(pattern(None, ".*", Sort.TIME), f"{sig}.sig")  # nor does a webhook for one


def test_the_agents_own_container_is_checked_before_a_helper_starts(tmp_path: Path) -> None:
    store, rt = MemoryStore(), FakeRuntime()
    cfg = config(tmp_path, [Signer().write_public(tmp_path / "a.pub")], self_update=True)
    cid = rt.add("web", "sha256:" + "1" * 64, (f"127.0.0.1:5000/ns/web@{A}",))
    started: list[str] = []
    ctx = context(
        tmp_path, cfg, store, rt, self_id=cid, start_helper=lambda name: started.append(name) or "h"
    )
    (r,) = reconcile(ctx).results
    assert (r.status, r.signature, started) == (Status.SKIPPED, "unsigned", [])


def test_an_older_state_db_gains_the_signatures_table(tmp_path: Path) -> None:
    import sqlite3

    State(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("DROP TABLE signatures")  # as an agent before signatures left it
    db.commit()
    db.close()
    state = State(tmp_path)
    state.remember_signature("h/ns/web", B, "fp", "repository")
    assert state.signature_verified("h/ns/web", B, {"fp"}, "repository") == "fp"
    assert state.signature_verified("h/ns/web", B, {"fp"}, "any") == "fp"
    assert state.signature_verified("h/ns/web", B, {"other"}, "repository") is None
    state.remember_signature("h/ns/web", A, "fp", "any")
    assert (
        state.signature_verified("h/ns/web", A, {"fp"}, "repository") is None
    )  # a laxer check is not enough


def test_public_keys_must_be_a_list_and_never_come_from_a_label(tmp_path: Path) -> None:
    pub = Signer().write_public(tmp_path / "a.pub")
    got = problems(tmp_path, {"watch": [{"container": "a", "image": IMG, "public_keys": str(pub)}]})
    assert got == ['watch[0].public_keys: must be a list of paths, e.g. ["/etc/cr-agent/cosign.pub"]']
    cfg = config(tmp_path, [pub], [], discover="labels")
    labels = {"cr-agent.enable": "true", "cr-agent.public_keys": str(tmp_path / "attacker.pub")}
    found = from_listing(cfg, [ListedContainer("id", "c", IMG, True, labels)], lambda n: IMG, ("registry",))
    (w,) = found.watches
    assert cfg.trusted_keys(w) == (str(pub),)
