"""plan() is pure: a table of observations → steps. reconcile() makes one registry call per repository."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import Watch, parse
from agent.deploy import Deployer
from agent.errors import RegistryError
from agent.model import ContainerInfo, ImageRef, Report, Status
from agent.reconcile.run import Action, Context, Observation, plan, reconcile
from agent.state import State
from tests.support.fakes import FakeRegistry, FakeRuntime

A, B, C = ("sha256:" + c * 64 for c in "abc")
REF_TEXT = "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"
REF = ImageRef.parse(REF_TEXT)
W = Watch(container="web", image=REF, source="aliyun")
N = Watch(container="web", image=REF, source="aliyun", mode="notify")
OPTIONAL = Watch(container="web", image=REF, source="aliyun", optional=True)


def info(
    *digests: str, repo: str = "ns/web", host: str = "registry-vpc.cn-hangzhou.aliyuncs.com"
) -> ContainerInfo:
    return ContainerInfo(
        "id1", "web", "sha256:" + "f" * 64, tuple(f"{host}/{repo}@{d}" for d in digests), True
    )


def broken(state: str, exit_code: int, *digests: str) -> ContainerInfo:
    return replace(info(*digests), running=False, state=state, exit_code=exit_code)


@pytest.mark.parametrize(
    ("obs", "action", "current", "target", "reason"),
    [
        (Observation(watch=W, container=info(A), tag_digest=A), Action.NOTHING, A, A, None),
        (Observation(watch=W, container=info(A), tag_digest=B), Action.UPDATE, A, B, None),
        (Observation(watch=W, container=info(A, B), tag_digest=B), Action.NOTHING, B, B, None),
        (
            Observation(watch=W, container=info(), tag_digest=B),
            Action.UPDATE,
            None,
            B,
            None,
        ),  # built locally: no RepoDigest
        (
            Observation(watch=W, container=info(A, repo="other/web"), tag_digest=A),
            Action.UPDATE,
            None,
            A,
            None,
        ),  # other repo path
        (
            Observation(watch=W, container=None, tag_digest=A),
            Action.MISSING,
            None,
            A,
            "container 'web' not found",
        ),
        (
            Observation(watch=OPTIONAL, container=None, tag_digest=A),
            Action.SKIP,
            None,
            A,
            "container 'web' not found (optional)",
        ),
        (
            Observation(watch=W, container=broken("restarting", 3, A), tag_digest=A),
            Action.FAIL,
            A,
            A,
            "web is restarting, exit code 3",
        ),
        (
            Observation(watch=W, container=broken("exited", 137, A), tag_digest=A),
            Action.FAIL,
            A,
            A,
            "web is exited, exit code 137",
        ),
        (
            Observation(watch=W, container=broken("exited", 0, A), tag_digest=A),
            Action.NOTHING,
            A,
            A,
            None,
        ),  # stopped on purpose
        (
            Observation(watch=W, container=info(A), error="boom [REPO_NOT_EXIST]"),
            Action.FAIL,
            A,
            None,
            "REPO_NOT_EXIST",
        ),
        (
            Observation(watch=W, container=info(A), tag_digest=None),
            Action.FAIL,
            A,
            None,
            "tag 'latest' not found in ns/web",
        ),
        (
            Observation(watch=W, container=info(A), tag_digest=B, quarantined={B: "crashed"}),
            Action.SKIP,
            A,
            B,
            "quarantined",
        ),
        (
            Observation(watch=W, container=info(A), tag_digest=C, quarantined={B: "crashed"}),
            Action.UPDATE,
            A,
            C,
            None,
        ),
        (Observation(watch=W, container=info(B), tag_digest=B, pinned=A), Action.UPDATE, B, A, None),
        (Observation(watch=W, container=info(A), tag_digest=B, pinned=A), Action.NOTHING, A, A, None),
        (Observation(watch=W, container=info(A), error="API down", pinned=A), Action.NOTHING, A, A, None),
        (
            Observation(watch=W, container=None, runtime_error="docker: socket gone"),
            Action.FAIL,
            None,
            None,
            "socket gone",
        ),
        # monitor only (mode = "notify"): an update becomes a report; everything else is unchanged
        (
            Observation(watch=N, container=info(A), tag_digest=B),
            Action.REPORT,
            A,
            B,
            'monitor only (mode = "notify")',
        ),
        (Observation(watch=N, container=info(A), tag_digest=A), Action.NOTHING, A, A, None),
        (
            Observation(watch=N, container=info(A), tag_digest=B, quarantined={B: "crashed"}),
            Action.SKIP,
            A,
            B,
            "quarantined",
        ),
        (
            Observation(watch=N, container=info(B), tag_digest=B, pinned=A),
            Action.REPORT,
            B,
            A,
            "monitor only",
        ),
    ],
)
def test_plan_table(
    obs: Observation, action: Action, current: str | None, target: str | None, reason: str | None
) -> None:
    (step,) = plan([obs])
    assert (step.action, step.current, step.to_digest) == (action, current, target)
    if reason:
        assert step.reason is not None and reason in step.reason
    else:
        assert step.reason is None


def test_host_is_ignored_when_matching_repo_digests() -> None:
    (step,) = plan(
        [Observation(watch=W, container=info(A, host="registry.cn-hangzhou.aliyuncs.com"), tag_digest=A)]
    )
    assert step.action is Action.NOTHING


def make_ctx(tmp_path: Path, watches: list[dict], registry: FakeRegistry, runtime: FakeRuntime) -> Context:
    cfg = parse(
        {"agent": {"state_dir": str(tmp_path)}, "watch": watches},
        {"ALIYUN_ACCESS_KEY_ID": "i", "ALIYUN_ACCESS_KEY_SECRET": "s"},
    )
    state = State(tmp_path)
    return Context(cfg, {"aliyun": registry, "registry": registry}, runtime, state, Deployer(runtime, state))


def test_one_registry_request_per_repository_per_pass(tmp_path: Path) -> None:
    rt = FakeRuntime()
    for name in ("a", "b", "c"):
        rt.add(name, f"sha256:{name * 64}", (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    rt.add("d", "sha256:" + "d" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/api@{A}",))
    reg = FakeRegistry({"ns/web": {"latest": A, "v2": A}, "ns/api": {"latest": A}})
    watches = [{"container": n, "image": f"registry.cn-hangzhou.aliyuncs.com/ns/web:{t}"} for n, t in
               (("a", "latest"), ("b", "latest"), ("c", "v2"))]  # fmt: skip
    watches.append({"container": "d", "image": "registry.cn-hangzhou.aliyuncs.com/ns/api:latest"})
    report = reconcile(make_ctx(tmp_path, watches, reg, rt))
    assert sorted(reg.calls) == [("ns/api", ("latest",)), ("ns/web", ("latest", "v2"))]
    assert [r.status for r in report.results] == [Status.UP_TO_DATE] * 4
    assert rt.calls["pull"] == 0


def test_registry_failure_fails_that_entry_only_and_touches_nothing(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    rt.add("b", "sha256:" + "2" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/api@{A}",))
    reg = FakeRegistry(
        {"ns/api": {"latest": B}},
        error={"ns/web": RegistryError("ACR said no", code="SignatureDoesNotMatch")},
    )
    report = reconcile(make_ctx(tmp_path, [
        {"container": "a", "image": "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"},
        {"container": "b", "image": "registry.cn-hangzhou.aliyuncs.com/ns/api:latest", "min_uptime": "0s"},
    ], reg, rt))  # fmt: skip
    a, b = report.results
    assert a.status is Status.FAILED and "SignatureDoesNotMatch" in (a.error or "")
    assert b.status is Status.UPDATED
    assert not report.ok
    assert [line for line in rt.log if " a" in line] == []


def single(tmp_path: Path, reg: FakeRegistry, rt: FakeRuntime, name: str = "a") -> Context:
    return make_ctx(
        tmp_path, [{"container": name, "image": "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"}], reg, rt
    )


def test_dry_run_reports_would_update_and_changes_nothing(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    reg = FakeRegistry({"ns/web": {"latest": B}})
    report = reconcile(single(tmp_path, reg, rt), dry_run=True)
    assert report.results[0].status is Status.WOULD_UPDATE and report.ok
    assert rt.log == []


def test_missing_container_fails_the_pass_unless_optional(tmp_path: Path) -> None:
    reg = FakeRegistry({"ns/web": {"latest": B}})
    report = reconcile(single(tmp_path, reg, FakeRuntime(), "ghost"))
    assert report.results[0].status is Status.FAILED and not report.ok
    assert "'ghost' not found" in (report.results[0].error or "")
    optional = {
        "container": "ghost",
        "image": "registry.cn-hangzhou.aliyuncs.com/ns/web:latest",
        "optional": True,
    }
    report = reconcile(make_ctx(tmp_path, [optional], reg, FakeRuntime()))
    assert report.results[0].status is Status.SKIPPED and report.ok


def test_pull_failure_fails_entry_before_any_container_is_touched(tmp_path: Path) -> None:
    from agent.errors import RuntimeFault

    rt = FakeRuntime(fail={"pull": RuntimeFault("manifest unknown")})
    rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    reg = FakeRegistry({"ns/web": {"latest": B}})
    r = reconcile(single(tmp_path, reg, rt)).results[0]
    assert r.status is Status.FAILED and "pull failed: manifest unknown" in (r.error or "")
    assert rt.calls["rename"] == 0 and rt.by_name()["a"].running


def test_an_invalid_digest_fails_only_its_own_tag(tmp_path: Path) -> None:
    from agent.errors import TagDigestError

    class Broken(FakeRegistry):
        def latest(self, repo, tags):  # type: ignore[no-untyped-def]
            raise TagDigestError("bad digest", found={"latest": B}, bad={"v2": "md5:xyz"})

    rt = FakeRuntime()
    rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{B}",))
    rt.add("b", "sha256:" + "2" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    watches = [
        {"container": "a", "image": "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"},
        {"container": "b", "image": "registry.cn-hangzhou.aliyuncs.com/ns/web:v2"},
    ]
    a, b = reconcile(make_ctx(tmp_path, watches, Broken({}), rt)).results
    assert a.status is Status.UP_TO_DATE
    assert b.status is Status.FAILED and "invalid digest for tag 'v2'" in (b.error or "")


def test_monitor_only_reports_would_update_and_never_pulls_or_replaces(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    reg = FakeRegistry({"ns/web": {"latest": B}})
    told: list[Report] = []
    ctx = make_ctx(tmp_path, [{"container": "a", "image": REF_TEXT, "mode": "notify"}], reg, rt)
    ctx.on_pass = lambda report, _s: told.append(report)
    (r,) = reconcile(ctx).results
    assert (r.status, r.current_digest, r.to_digest, r.error) == (Status.WOULD_UPDATE, A, B, None)
    assert rt.log == [] and rt.calls["pull"] == 0
    assert r.seen_before is None  # the first time: notified
    (again,) = reconcile(ctx).results
    assert again.status is Status.WOULD_UPDATE and again.seen_before is True  # not notified again
    reg.tags["ns/web"]["latest"] = C
    (newer,) = reconcile(ctx).results
    assert newer.to_digest == C and newer.seen_before is None  # a newer image is news again
    assert [len(t.results) for t in told] == [1, 1, 1]
    assert rt.log == [] and rt.calls["pull"] == 0


def test_a_dry_run_tells_no_one(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    told: list[Report] = []
    ctx = single(tmp_path, FakeRegistry({"ns/web": {"latest": B}}), rt)
    ctx.on_pass = lambda report, _s: told.append(report)
    assert reconcile(ctx, dry_run=True).results[0].status is Status.WOULD_UPDATE
    assert told == []


def test_notifier_tells_a_would_update_once_per_digest() -> None:
    from agent.config import NotifySettings
    from agent.model import Result
    from agent.notify.send import Notifier

    n = Notifier(NotifySettings(("json://127.0.0.1:1/",)))
    fresh = Result("web", REF_TEXT, Status.WOULD_UPDATE, A, B)
    seen = Result("web", REF_TEXT, Status.WOULD_UPDATE, A, B, seen_before=True)
    assert [i.kind for i in n.select(Report((fresh,)))] == ["would_update"]
    assert n.select(Report((seen,))) == []
