"""Errors that reach a user name the cause and the fix in the line itself (issue 21, item 6)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

from agent import logs
from agent.cli.commands import main
from agent.config import load
from agent.errors import RuntimeFault
from agent.notify.text import Item, body
from agent.runtimes.docker import DockerRuntime

ROOT = Path(__file__).resolve().parents[2]
SECRET = "-".join(["hook", "token", "value", "0123456789", "abcdef"])  # 32+ characters, as check wants


@pytest.fixture(autouse=True)
def _restore_logging():  # type: ignore[no-untyped-def]
    yield
    logs.setup("INFO")


def test_docker_not_running_says_so_and_names_docker_host(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFault) as e:
        DockerRuntime(base_url=f"unix://{tmp_path}/no-docker.sock")
    message = str(e.value)
    del e  # its traceback holds the SDK's half-built client, whose socket the collector closes now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert "Docker is not running, or its socket is elsewhere" in message and "DOCKER_HOST" in message


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to nobody")
def test_run_lock_permission_denied_says_run_as_root_or_set_state_dir() -> None:
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", "pass"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    if probe.returncode != 0:  # e.g. a pyenv build whose libpython lies under /root (mode 0700)
        pytest.skip(f"this interpreter cannot run as nobody: {probe.stderr.strip()[:200]}")
    d = Path(tempfile.mkdtemp(prefix="crt-lock-"))
    try:
        d.chmod(0o755)
        state = d / "state"
        state.mkdir(mode=0o700)  # root's: nobody may not write there
        cfg = d / "agent.toml"
        cfg.write_text(f'[agent]\nstate_dir = "{state}"\n[[watch]]\ncontainer = "web"\n'
                       'image = "127.0.0.1:5000/ns/web:latest"\n')  # fmt: skip
        cfg.chmod(0o644)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "agent",
             "once", "-c", str(cfg), "--log-json"],
            capture_output=True, text=True, timeout=60, cwd=d,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"},
        )  # fmt: skip
    finally:
        shutil.rmtree(d)
    assert done.returncode == 1, done.stderr
    (line,) = [json.loads(x) for x in done.stderr.splitlines() if "run lock" in x]
    assert "Permission denied" in line["message"]
    assert "run the agent as root" in line["message"] and "state_dir" in line["message"]


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "{tmp_path}/state"\n[[watch]]\ncontainer = "web"\n'
        'image = "127.0.0.1:5000/ns/web:latest"\n'
        '[webhook]\nlisten = "127.0.0.1:0"\ntoken_env = "CRT_HOOK_TOKEN"\n'
        '[notify]\nurls_env = "CRT_NOTIFY_URLS"\n'
    )
    return cfg


def test_env_values_lose_crlf_spaces_and_quotes_with_a_warning_that_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"CRT_HOOK_TOKEN": SECRET + " \r", "CRT_NOTIFY_URLS": '"json://127.0.0.1:9/a json://127.0.0.1:9/b"'}
    cfg = load(_config(tmp_path), env)
    assert cfg.webhook is not None and cfg.webhook.token.reveal() == SECRET
    assert cfg.notify is not None and [u.reveal() for u in cfg.notify.urls] == ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["agent"])
    assert main(["check", "--config-only", "-c", str(_config(tmp_path)), "--log-json"]) == 0
    warned = {line["message"] for line in map(json.loads, capsys.readouterr().err.splitlines())}
    hook = next(m for m in warned if "CRT_HOOK_TOKEN" in m)
    assert "Windows line ending (CRLF)" in hook and "trailing spaces" in hook and SECRET not in hook
    urls = next(m for m in warned if "CRT_NOTIFY_URLS" in m)
    assert "surrounding quotes" in urls and "json://" not in urls


def test_an_env_file_with_windows_line_endings_is_named_with_its_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "env").write_bytes(b"CRT_HOOK_TOKEN=abc\r\nCRT_NOTIFY_URLS=json://127.0.0.1:9/a\r\n")
    (tmp_path / "env").chmod(0o600)
    env = {"CRT_HOOK_TOKEN": SECRET, "CRT_NOTIFY_URLS": "json://127.0.0.1:9/a"}
    os.environ.update(env)
    try:
        assert main(["check", "--config-only", "-c", str(_config(tmp_path)), "--log-json"]) == 0
    finally:
        for k in env:
            os.environ.pop(k)
    err = capsys.readouterr().err
    assert f"{tmp_path / 'env'} has Windows line endings (CRLF)" in err and "sed -i" in err


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("ACR GetRepoTags: HTTP 400: Specified signature is not matched [SignatureDoesNotMatch]",
         "原因：AccessKey Secret 与 ID 不匹配，请检查 ALIBABA_CLOUD_ACCESS_KEY_SECRET [SignatureDoesNotMatch]"),
        ("registry refused HEAD x:latest: HTTP 401 [UNAUTHORIZED]", "原因：镜像仓库要求登录"),
        ("ACR GetRepoTags: repo not exist [REPO_NOT_EXIST]", "原因：仓库不存在"),
        ("pull failed: pull x@sha256:1: timed out", "原因：拉取镜像失败"),
        ("not healthy within 120s (HTTP 500)", "原因：新容器没有在期限内通过健康检查"),
    ],
)  # fmt: skip
def test_chinese_messages_give_chinese_reasons_with_the_raw_code_and_text(reason: str, expected: str) -> None:
    text = body([Item("failed", "web", "h/ns/web:v1", reason=reason)], "zh", markdown=False)
    assert expected in text and f"详情：{reason}" in text
    english = body([Item("failed", "web", "h/ns/web:v1", reason=reason)], "en", markdown=False)
    assert f"reason: {reason}" in english and "详情" not in english


def test_once_without_docker_says_so_in_its_log_line(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{tmp_path}/state"\n[[watch]]\ncontainer = "web"\n'
                   'image = "127.0.0.1:5000/ns/web:latest"\n')  # fmt: skip
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
           "DOCKER_HOST": f"unix://{tmp_path}/docker.sock"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "agent", "once", "-c", str(cfg), "--log-json"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    errors = [json.loads(x)["message"] for x in done.stderr.splitlines() if '"ERROR"' in x]
    assert any(
        "Docker is not running, or its socket is elsewhere" in m and "DOCKER_HOST" in m for m in errors
    ), errors
