"""The docker config's stored logins, used for crpi hosts and registry HEADs without a token."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from agent.registries.dockercfg import docker_config_auth


def _write(tmp_path: Path, auths: dict[str, object]) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": auths}))


def test_reads_the_login_for_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth = base64.b64encode(b"me@alias:pa:ss").decode()
    _write(tmp_path, {"https://crpi-x.cn-hangzhou.personal.cr.aliyuncs.com": {"auth": auth}})
    assert docker_config_auth("crpi-x.cn-hangzhou.personal.cr.aliyuncs.com") == ("me@alias", "pa:ss")
    assert docker_config_auth("registry.cn-hangzhou.aliyuncs.com") is None


@pytest.mark.parametrize("content", ["not json", '{"auths": {"h": {"auth": "%%%"}}}', '{"auths": []}'])
def test_a_broken_config_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(content)
    assert docker_config_auth("h") is None
