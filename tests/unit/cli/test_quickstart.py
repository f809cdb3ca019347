"""The README's quick start, run word for word in a clean environment; the example names only
variables the README names; files holding secrets that others can read are warned about."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import secretfiles

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")
AGENT_BIN = Path(sys.executable).parent  # the venv holding the `agent` script


def quick_start_block() -> list[str]:
    section = README.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no ```sh block in the README's Quick start"
    return block.group(1).strip().splitlines()


def edit_watch(path: Path, container: str, image: str) -> None:
    """What the README's "# edit" line asks a user to do."""
    text = path.read_text()
    text, n1 = re.subn(r'(?m)^container = "[^"]*"', f'container = "{container}"', text)
    text, n2 = re.subn(r'(?m)^image = "[^"]*"', f'image = "{image}"', text)
    assert (n1, n2) == (1, 1), "the example's [[watch]] must have one container and one image line"
    path.write_text(text)


def run_sh(lines: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # no engine here (a unit test): `agent check` then says so, after the config passed
    env = {"PATH": f"{AGENT_BIN}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8",
           "DOCKER_HOST": f"unix://{cwd}/no-docker.sock"}  # fmt: skip
    script = "set -e\n" + "\n".join(lines) + "\n"
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_quick_start_works_as_written(tmp_path: Path) -> None:
    shutil.copy(ROOT / "agent.toml.example", tmp_path)
    lines = quick_start_block()
    edit = next(i for i, line in enumerate(lines) if line.startswith("# edit"))
    assert [line.split()[0] for line in lines if not line.startswith("#")] == ["cp", "export", "agent"]
    before = run_sh(lines[:edit], tmp_path)
    assert before.returncode == 0, before.stderr
    edit_watch(tmp_path / "agent.toml", "shop", "registry.cn-shanghai.aliyuncs.com/acme/shop:stable")
    exports = [line for line in lines[:edit] if line.startswith("export ")]
    after = run_sh(exports + lines[edit:], tmp_path)
    assert after.returncode == 1, after.stdout + after.stderr  # 1: a problem on this host, the config is fine
    assert "config OK" in after.stdout and "shop" in after.stdout
    assert "Docker is not running, or its socket is elsewhere" in after.stdout
    assert "fix: start Docker" in after.stdout


def test_example_names_only_variables_the_readme_names() -> None:
    example = (ROOT / "agent.toml.example").read_text()
    named = set(re.findall(r'_env\s*=\s*"([A-Z0-9_]+)"', example))
    assert named, "the example shows *_env keys"
    assert {v for v in named if v not in README} == set()
    assert "CR_AGENT_AK_ID" not in example  # main's example: `agent check` failed after the README's export


def _secret_config(tmp_path: Path, mode: int, secret: bool = True) -> Path:
    cfg = tmp_path / "agent.toml"
    body = '[[watch]]\ncontainer = "web"\nimage = "registry.cn-hangzhou.aliyuncs.com/ns/web"\n'
    cfg.write_text(('[aliyun]\naccess_key_secret = "s3cret-value"\n' if secret else "") + body)
    cfg.chmod(mode)
    return cfg


@pytest.mark.parametrize(("mode", "secret", "warned"), [
    (0o644, True, True), (0o640, True, True), (0o600, True, False), (0o644, False, False),
])  # fmt: skip
def test_config_holding_secrets_readable_by_others_is_warned(
    tmp_path: Path, mode: int, secret: bool, warned: bool
) -> None:
    cfg = _secret_config(tmp_path, mode, secret)
    found = secretfiles.warnings(cfg)
    assert bool(found) is warned
    if warned:
        assert str(cfg) in found[0] and f"{mode:04o}" in found[0] and "chmod 600" in found[0]


def test_env_file_beside_the_config_readable_by_others_is_warned(tmp_path: Path) -> None:
    cfg = _secret_config(tmp_path, 0o600, secret=False)
    env_file = tmp_path / "env"
    env_file.write_text("ALIBABA_CLOUD_ACCESS_KEY_SECRET=s3cret-value\n")
    env_file.chmod(0o644)
    assert [w for w in secretfiles.warnings(cfg) if str(env_file) in w]
    env_file.chmod(0o600)
    assert secretfiles.warnings(cfg) == []


def test_agent_check_prints_the_warning_and_passes(tmp_path: Path) -> None:
    cfg = _secret_config(tmp_path, 0o644)
    env = {"PATH": "/usr/bin:/bin", "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIid", "HOME": str(tmp_path),
           "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}  # fmt: skip
    done = subprocess.run([str(AGENT_BIN / "agent"), "check", "--config-only", "-c", str(cfg)], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "readable by other users (mode 0644)" in done.stderr
    assert "s3cret-value" not in done.stdout + done.stderr
