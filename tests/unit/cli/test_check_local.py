"""`agent check` without --online, the parts that need no engine: state_dir, region spelling, hints
(issue 21 item 2; the engine parts: tests/integration/test_check_engine.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from agent.cli.check import engine_error, host_findings, state_dir_finding
from agent.config.load import parse
from agent.errors import RuntimeFault
from agent.registries.acr_regions import REGIONS, region_problem

ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"}


def _watch(image: str, source: str | None = None, **aliyun: str):  # type: ignore[no-untyped-def]
    entry = {"container": "web", "image": image, **({"source": source} if source else {})}
    cfg = parse({"aliyun": aliyun, "watch": [entry]}, ENV)
    return cfg, cfg.watches[0]


@pytest.mark.parametrize(("host", "level", "needle"), [
    ("registry.cn-hangzou.aliyuncs.com", "problem", "did you mean 'cn-hangzhou'"),
    ("registry-vpc.cn-shanghia.aliyuncs.com", "problem", "did you mean 'cn-shanghai'"),
    ("acme-registry.cn-beijin.cr.aliyuncs.com", "problem", "did you mean 'cn-beijing'"),
    ("registry.ap-southeast-9.aliyuncs.com", "warning", "not in the list this version knows"),
])  # fmt: skip
def test_a_misspelt_region_in_the_host_is_caught(host: str, level: str, needle: str) -> None:
    cfg, w = _watch(f"{host}/ns/web:latest")
    (f,) = host_findings(cfg, w)
    assert (f.level, needle in f.text, "fix the region" in f.fix) == (level, True, True), f


def test_known_regions_and_registry_sources_pass() -> None:
    for host in ("registry.cn-hangzhou.aliyuncs.com", "crpi-abc.cn-shenzhen.personal.cr.aliyuncs.com"):
        assert host_findings(*_watch(f"{host}/ns/web")) == []
    assert host_findings(*_watch("127.0.0.1:5000/ns/web")) == []  # source "registry": no region
    assert all(region_problem(r) is None for r in REGIONS)


def test_custom_domain_region_comes_from_aliyun_region() -> None:
    cfg, w = _watch("images.example.com/ns/web", "aliyun", region="cn-hangzou")
    (f,) = host_findings(cfg, w)
    assert f.level == "problem" and "[aliyun] region" in f.text


def test_state_dir_writable_creatable_or_not(tmp_path: Path) -> None:
    assert state_dir_finding(tmp_path).level == "ok"
    assert "will be created" in state_dir_finding(tmp_path / "a" / "b").text
    blocker = tmp_path / "file"
    blocker.write_text("")
    f = state_dir_finding(blocker / "state")
    assert f.level == "problem" and "not a directory" in f.text and "state_dir" in f.fix
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert state_dir_finding(ro).level == "problem"


def _fault(cause: BaseException) -> RuntimeFault:
    try:
        try:
            raise requests.ConnectionError(("Connection aborted.", cause))
        except requests.ConnectionError as e:
            raise RuntimeFault(f"the Docker Engine: {e}") from e
    except RuntimeFault as f:
        return f


def test_engine_errors_say_what_to_do() -> None:
    gone = engine_error(_fault(FileNotFoundError(2, "No such file or directory")), "Docker")
    assert "Docker is not running, or its socket is elsewhere" in gone.text and "DOCKER_HOST" in gone.fix
    denied = engine_error(_fault(PermissionError(13, "Permission denied")), "Docker")
    assert "needs root" in denied.text and "docker` group" in denied.fix
    other = engine_error(RuntimeFault("boom"), "engine tcp://h:2376")
    assert other.level == "problem" and "boom" in other.text
