"""Reading the agent's `--log-json` events: what the tests and the benchmarks (bench/) both read."""

from __future__ import annotations

import datetime
import json
from typing import Any

# the `--log-json` events the benchmarks read (tests/unit/test_architecture.py checks the agent emits them)
AGENT_EVENTS = ("server.listening", "wake.queued", "pass.start", "plan.update", "replace.step", "pass.result",
                "pass.done")  # fmt: skip


def agent_events(text: str, *names: str) -> list[dict[str, Any]]:
    """The agent's `--log-json` lines with an `event` field (all, or those named), `ts` in epoch seconds."""
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") and (not names or record["event"] in names):
            record["ts"] = datetime.datetime.fromisoformat(record["time"]).timestamp()
            out.append(record)
    return out


_STEP_AS = {"old_stopped": "stop_old", "started": "start_new"}


def agent_timeline(stderr: str, container: str) -> dict[str, float]:
    """Epoch times of "replacing" (`plan.update`), each step (`replace.step`) and "pass_done" for `container`."""
    out: dict[str, float] = {}
    for e in agent_events(stderr, "plan.update", "replace.step", "pass.done"):
        if e["event"] == "pass.done":
            out.setdefault("pass_done", e["ts"])
        elif e.get("container") != container:
            continue
        elif e["event"] == "plan.update":
            out.setdefault("replacing", e["ts"])
        elif e.get("step"):
            out.setdefault(_STEP_AS.get(e["step"], e["step"]), e["ts"])
    return out
