"""SIGHUP in `agent run`: the config is read again and swapped in between passes, or refused whole."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from agent.config import Config, load
from agent.daemon import Daemon, serve
from agent.deploy import Deployer
from agent.errors import ConfigError
from agent.reconcile.run import Context
from agent.state import State
from tests.support.fakes import FakeRegistry, FakeRuntime
from tests.support.wait import wait_until

WEB = '[[watch]]\ncontainer = "web"\nimage = "127.0.0.1:5000/ns/web:latest"\nsource = "registry"\n'
API = '[[watch]]\ncontainer = "api"\nimage = "127.0.0.1:5000/ns/api:latest"\nsource = "registry"\n'


def build(cfg: Config, stop: threading.Event | None = None, metrics: object = None) -> Context:
    state, runtime = State(cfg.agent.state_dir), FakeRuntime()
    return Context(cfg, {"registry": FakeRegistry({})}, runtime, state, Deployer(runtime, state))


def write(path: Path, interval: str, *entries: str) -> Path:
    path.write_text(
        f'[agent]\nstate_dir = "{path.parent}/state"\ninterval = "{interval}"\n' + "".join(entries)
    )
    return path


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Daemon, Path, list[str]]]:
    """A started daemon (signal handlers in this, the main thread), its `run` in a thread, and its log."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    path = write(tmp_path / "agent.toml", "1h", WEB)
    d = Daemon(load(path), build)
    d.start()
    assert d.coord is not None and d.ticker is not None
    out: list[int] = []  # run() restores the signal handlers, which only the main thread may do
    t = threading.Thread(target=lambda: out.append(serve(d.coord, d.ticker, d._reload_if_wanted)))  # type: ignore[arg-type]
    t.start()
    try:
        wait_until(lambda: d.coord is not None and d.coord.passes == 1, 10, "the pass at start")
        yield d, path, lines
    finally:
        d.stop_event.set()
        t.join(10)
        d.stop()
        logger.remove(sink)
    assert out == [0], "a reload never stops the daemon"


def test_sighup_swaps_in_a_good_config_between_passes_and_says_what_changed(running) -> None:
    d, path, lines = running
    assert d.coord is not None and d.ticker is not None
    write(path, "1m", WEB, API)
    d.coord._lock.acquire()  # a pass runs: the reload waits for it
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: any("SIGHUP received" in line for line in lines), 10, "the reload to be queued")
        wait_until(lambda: d.coord is not None and d.coord.lock_waits >= 1, 10, "the reload waiting")
        assert [w.container for w in d.cfg.watches] == ["web"], "swapped in during a pass"
    finally:
        d.coord._lock.release()
    wait_until(lambda: [w.container for w in d.cfg.watches] == ["web", "api"], 10, "the new config")
    (said,) = [line for line in lines if "reloaded:" in line]
    assert "entries added: api" in said and "schedule: every 3600s → every 60s" in said, said
    assert d.ticker.due is not None and d.ticker.due.schedule.interval == 60
    job = d.ticker._sched.get_job("schedule")
    assert str(job.trigger) == "every 60s", "the scheduled job follows the new schedule"


def test_sighup_with_a_bad_config_keeps_the_running_one_and_lists_every_problem(running) -> None:
    d, path, lines = running
    write(path, "soon", WEB, API.replace("source", "sauce"))
    with pytest.raises(ConfigError) as check:  # what `agent check` says about the file
        load(path)
    assert len(check.value.problems) >= 2
    os.kill(os.getpid(), signal.SIGHUP)
    wait_until(lambda: any("was not reloaded" in line for line in lines), 10, "the refusal")
    (refused,) = [line for line in lines if "was not reloaded" in line]
    assert all(problem in refused for problem in check.value.problems), refused
    assert [w.container for w in d.cfg.watches] == ["web"] and d.cfg.agent.schedule.interval == 3600
    assert d.ticker is not None and d.ticker.alive()


def test_agent_once_notes_sighup_during_its_pass_and_goes_on() -> None:
    """A lost SSH session sends SIGHUP; by default it kills the process, here halfway through nothing."""
    from agent.cli.hangup import hangup_ignored

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    before = signal.getsignal(signal.SIGHUP)
    try:
        with hangup_ignored():
            os.kill(os.getpid(), signal.SIGHUP)
            wait_until(lambda: True, 1, "")  # the handler runs between bytecodes
            assert not lines, "said only once the pass is over"
    finally:
        logger.remove(sink)
    assert signal.getsignal(signal.SIGHUP) is before
    assert lines == ["SIGHUP received during the pass: ignored, the pass ran to its end\n"]
