"""`systemd-analyze verify` on the shipped units (works on files; PID 1 need not be systemd)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "packaging" / "systemd").glob("cr-agent*"))
DOCUMENTED_AGENT = "/usr/local/bin/agent"


def verify(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "scripts/dev-env.sh installs Debian's systemd (systemd-analyze)"
    return subprocess.run([analyze, "verify", *(str(p) for p in sorted(unit_dir.iterdir()))],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_shipped_units_verify_clean(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists: point it at this venv's agent
    agent = Path(sys.executable).parent / "agent"
    assert agent.is_file()
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(DOCUMENTED_AGENT, str(agent)))
    done = verify(tmp_path)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_reports_an_inline_comment(tmp_path: Path) -> None:
    # the check above could fail: main's snippet had `TimeoutStopSec=300   # ...`
    unit = (ROOT / "packaging" / "systemd" / "cr-agent.service").read_text()
    unit = unit.replace(DOCUMENTED_AGENT, "/bin/true").replace(
        "TimeoutStopSec=300", "TimeoutStopSec=300  # why"
    )
    (tmp_path / "cr-agent.service").write_text(unit)
    done = verify(tmp_path)
    assert "Failed to parse" in done.stdout + done.stderr


def test_systemctl_reload_sends_sighup_to_the_daemon() -> None:
    """`systemctl reload cr-agent` is the config reload of `agent run` (issue 20 item 2)."""
    lines = (ROOT / "packaging" / "systemd" / "cr-agent.service").read_text().splitlines()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines
