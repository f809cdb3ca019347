"""What `agent once` prints on stdout: the JSON report, the table (TTY or --table), or nothing (issue 11 problem 5)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agent import logs
from agent.cli import commands as cli
from agent.model import Report, Result, Status

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
REPORT = Report((Result("web", "127.0.0.1:5000/ns/web:latest", Status.UPDATED, A, B),))


@pytest.fixture
def agent_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{tmp_path}"\n[[watch]]\ncontainer = "web"\n'
                   'image = "127.0.0.1:5000/ns/web:latest"\n')  # fmt: skip
    monkeypatch.setattr("agent.app.build_context", lambda cfg, **kw: None)
    monkeypatch.setattr("agent.cli.commands.reconcile", lambda ctx, **kw: REPORT)
    yield lambda *args: cli.main(["once", "-c", str(cfg), *args])
    logs.setup("INFO")


def test_log_json_off_a_tty_prints_only_json_lines(agent_once, capsys) -> None:
    assert agent_once("--log-json") == 0
    out, err = capsys.readouterr()
    assert out == ""  # cron's `>> file 2>&1` gets nothing but the JSON log lines
    assert all(json.loads(line) for line in err.splitlines())


def test_the_table_goes_to_a_tty_or_with_table(agent_once, capsys, monkeypatch) -> None:
    assert agent_once("--table") == 0
    assert capsys.readouterr().out.startswith("web ")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert agent_once() == 0
    assert "updated" in capsys.readouterr().out


def test_json_still_prints_the_report(agent_once, capsys) -> None:
    assert agent_once("--json", "--log-json") == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["results"][0]["status"] == "updated"


def test_config_errors_under_log_json_are_a_json_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[agent]\njitter = "forever"\n')
    assert cli.main(["once", "-c", str(bad), "--log-json"]) == 2
    (line,) = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert line["event"] == "config.invalid" and "agent.jitter: not a duration" in line["message"]
    logs.setup("INFO")
