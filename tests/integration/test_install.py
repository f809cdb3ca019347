"""The README's install commands, run from the checkout with their paths moved under a temporary
directory: Debian's pipx, and a venv. Both must give a working `agent` in the documented bin dir."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = "/usr/local/bin"


def readme_install_lines(tool: str) -> list[str]:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Install\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block
    lines = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    picked = [line for line in lines if tool in line and "apt install" not in line]
    assert picked, f"no {tool} command in the README's Install block"
    return picked


def run_moved(lines: list[str], moves: dict[str, Path], tmp: Path) -> None:
    script = "\n".join(lines).replace("sudo ", "")
    for documented, moved in moves.items():
        script = script.replace(documented, str(moved))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPX_", "VIRTUAL_ENV"))}
    env["HOME"] = str(tmp)  # pipx's own files, off the real home
    done = subprocess.run(["bash", "-euc", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"


def check_agent(agent: Path, tmp: Path) -> None:
    assert agent.is_file() and os.access(agent, os.X_OK), agent
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIid",
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret", "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}  # fmt: skip
    done = subprocess.run([str(agent), "check", "--config-only", "-c", str(ROOT / "agent.toml.example")], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "config OK" in done.stdout, done.stdout + done.stderr


def test_pipx_install_puts_agent_in_the_documented_bin_dir(tmp_path: Path) -> None:
    assert shutil.which("pipx"), "scripts/dev-env.sh installs Debian's pipx"
    lines = readme_install_lines("pipx install")
    assert all(f"PIPX_BIN_DIR={BIN_DIR}" in line for line in lines)
    bin_dir = tmp_path / "bin"
    run_moved(lines, {"/opt/pipx": tmp_path / "pipx", BIN_DIR: bin_dir}, tmp_path)
    check_agent(bin_dir / "agent", tmp_path)


def test_venv_install_links_agent_into_the_documented_bin_dir(tmp_path: Path) -> None:
    lines = readme_install_lines("/opt/cr-agent")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    run_moved(lines, {"/opt/cr-agent": tmp_path / "venv", BIN_DIR: bin_dir}, tmp_path)
    assert (bin_dir / "agent").is_symlink()
    check_agent(bin_dir / "agent", tmp_path)
