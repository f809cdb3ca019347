"""Downtime: from samples and the agent's log to numbers (gaps, failures, phases, summaries)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.events import agent_timeline as agent_timeline


# ---- the observers ----------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float  # wall clock (epoch s) when the answer (or the failure) came
    outcome: str  # "ok" or why not
    body: str = ""  # the page, or the proxy's reason
    t0: float | None = None  # when the request was sent
    dns_s: float | None = None  # in-network client: how long the lookup took
    ips: list[str] | None = None  # in-network client: the addresses, in the order Docker's DNS gave them


def uptime_offset() -> float:
    """Epoch seconds minus /proc/uptime (the client containers stamp with the host's uptime)."""
    up = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - up


def parse_client_log(text: str, offset: float) -> list[Sample]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        with contextlib.suppress(ValueError):
            t0, t1, t = (float(x) + offset for x in parts[:3])
            ips = [x for x in parts[3].split(",") if x and x != "none"]
            ok = parts[4] == "OK"
            why = "ok" if ok else ("no address" if not ips else "no answer")
            out.append(Sample(t, why, parts[5] if ok and len(parts) > 5 else "", t0, dns_s=t1 - t0, ips=ips))
    return out


def analyse(
    samples: list[Sample], old: str, new: str, ips: dict[str, str | None], since: float = 0.0
) -> dict[str, Any]:
    """Failed and total requests, the longest gap between successful answers, and what happened around it.

    `ips` names the old and the new container's addresses, to tell which one a failed request went to.
    """
    samples = sorted(samples, key=lambda s: s.t)
    which = {v: k for k, v in ips.items() if v}

    def good(s: Sample) -> bool:
        return s.outcome == "ok" and s.body in (old, new)

    def why(s: Sample) -> str:
        if s.outcome == "ok":
            return f"unexpected page {s.body[:20]!r}"
        target = s.ips[0] if s.ips else (s.body.split()[-1] if s.body.startswith("upstream ") else "")
        reason = "no address" if s.body == "no address" else s.outcome
        if s.t0 is not None and s.t - s.t0 >= 1.9:  # the proxy or the client gave up: the request hung
            reason += " after hanging"
        return f"{reason} (to the {which[target]} container)" if target in which else reason

    ok = [s for s in samples if good(s)]
    failed = [s for s in samples if not good(s)]
    gap, gap_at = 0.0, (None, None)  # type: tuple[float, tuple[float | None, float | None]]
    for a, b in zip(ok, ok[1:], strict=False):
        if b.t - a.t > gap:
            gap, gap_at = b.t - a.t, (a.t, b.t)
    first_new = next((s.t for s in ok if s.body == new), None)
    span = samples[-1].t - samples[0].t if len(samples) > 1 else 0.0
    lat = sorted(s.t - s.t0 for s in samples if s.t0 is not None)
    # Requests to the new container that took over 0.9 s but were answered: stalled, not failed.
    stalled = [s for s in ok if s.t0 is not None and s.t - s.t0 > 0.9]
    lo, hi = (gap_at[0] or 0) - 0.05, (gap_at[1] or 0) + 0.05
    around = [s for s in samples if lo <= s.t <= hi or not good(s) or (s in stalled and s.t >= since)]
    return {
        "requests": len(samples), "failed": len(failed), "longest_gap_ms": round(gap * 1000, 1),
        "gap_from": gap_at[0], "gap_to": gap_at[1], "first_new": first_new,
        "last_old": max((s.t for s in ok if s.body == old), default=None),
        "failures": dict(Counter(why(s) for s in failed)), "stalled_over_0_9s": len(stalled),
        "rate_per_s": round(len(samples) / span, 1) if span else None,
        "latency_ms": {"median": round(lat[len(lat) // 2] * 1000, 1), "p99": round(lat[int(len(lat) * .99)] * 1000, 1),
                       "max": round(lat[-1] * 1000, 1)} if lat else None,
        "old_after_new": sum(1 for s in ok if first_new and s.t > first_new and s.body == old),
        # For a post-mortem: [sent, answered, outcome, v1|v2|reason, lookup s, addresses]
        "around_gap": [[s.t0, s.t, s.outcome, "v2" if s.body == new else "v1" if s.body == old else s.body[:40],
                        s.dns_s, s.ips] for s in around[:300]],
    }  # fmt: skip


# ---- the agent's DEBUG log (--log-json) -----------------------------------------------------------
# Steps under the names the phases and the page use (those the journal had before it was typed).
def agent_phases(tl: dict[str, float], strategy: str) -> dict[str, float | None]:
    """Durations in ms between the agent's log lines. The gate has passed at `step healthy` (before
    a071f2d, start-first logged `step stop_old` as the gate passed, so there the first of the two counts)."""

    def ms(a: str, b: str) -> float | None:
        return round((tl[b] - tl[a]) * 1000, 1) if a in tl and b in tl else None

    gate = "stop_old" if strategy == "start-first" and "stop_old" in tl else "healthy"
    return {
        "seen_to_healthy_ms": ms("replacing", gate),
        "seen_to_start_new_ms": ms("replacing", "start_new"),
        "stop_old_to_start_new_ms": ms("stop_old", "start_new") if strategy == "stop-first" else None,
        "start_call_ms": ms("start_new", "health_wait"),
        "gate_ms": ms("health_wait", gate),
        "healthy_to_pass_done_ms": ms(gate, "pass_done"),
        "seen_to_pass_done_ms": ms("replacing", "pass_done"),
    }


# ---- what is measured -----------------------------------------------------------------------------
PERIOD = 0.01  # the host loop on a published port starts one request every 10 ms
PROXY_PERIOD = 0.02  # through the proxy (a few processes per request on a shared 2-core host): every 20 ms
NAME_PERIOD = 0.04  # through the proxy by container name: every 40 ms
MAX_IN_FLIGHT = 24  # per loop: when this many are pending, the next one waits (bounds the proxy's load)
LOOP_MAX_REQUESTS = 20000
LOOP_MAX_SECONDS = 150.0
REQUEST_TIMEOUT = 5.0  # the proxy gives up after 2 s on the lookup and 2 s on the upstream, and answers 502
GATE = {"min_uptime": "1s", "health_timeout": "60s"}


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    tool: str  # agent | ouroboros | blog
    exposure: str  # port | proxy
    strategy: str | None = None


METHODS = [
    Method("agent-stop", "cr-agent stop-first, published port", "agent", "port", "stop-first"),
    Method("agent-start", "cr-agent start-first, behind the proxy", "agent", "proxy", "start-first"),
    Method("ouroboros", "Ouroboros 1.4.2 --run-once, published port", "ouroboros", "port"),
    Method("blog", "blog receiver (rm -f, pull, run), published port", "blog", "port"),
]
EXTRAS = [  # full mode, or --extras
    Method("agent-stop-proxy", "cr-agent stop-first, behind the proxy", "agent", "proxy", "stop-first"),
]
OBSERVERS = {
    "host": "host → 127.0.0.1:port",
    "alias": "host → proxy → alias `web`",
    "name": "host → proxy → container name",
    "client": "in-network client → alias `web` (closed loop)",
}


def stats(values: list[float | None]) -> dict[str, Any]:
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {
        "n": len(xs),
        "median": round(statistics.median(xs), 2),
        "min": min(xs),
        "max": max(xs),
        "values": xs,
    }


def summarize(out: dict[str, Any], methods: list[Method]) -> dict[str, Any]:
    rounds = out["rounds"]
    s: dict[str, Any] = {
        "start": {k: stats([r["start"][k] for r in rounds]) for k in rounds[0]["start"]} if rounds else {}
    }
    races = [r["dns_race"] for r in rounds if "dns_race" in r]
    s["dns_race"] = {
        k: stats([x[k] for x in races]) for k in ("start_call_ms", "in_dns_ms", "first_answer_ms")
    }
    s["methods"] = {}
    for m in methods:
        rs = [r[m.key] for r in rounds if m.key in r]
        ms: dict[str, Any] = {"runs": len(rs)}
        for obs in OBSERVERS:
            got = [r[obs] for r in rs if obs in r]
            if got:
                ms[obs] = {k: stats([g[k] for g in got]) for k in ("failed", "requests", "longest_gap_ms",
                                                                   "stalled_over_0_9s")}  # fmt: skip
                ms[obs]["failures"] = dict(sum((Counter(g["failures"]) for g in got), Counter()))
                ms[obs]["runs_with_failures"] = sum(1 for g in got if g["failed"])
        if m.tool == "agent" and rs:
            phases = [r["tool"]["phases"] for r in rs]
            ms["phases"] = {k: stats([ph[k] for ph in phases]) for k in phases[0]}
            for k in ("gap_from_minus_stop_old_ms", "gap_to_minus_start_new_ms"):
                ms[k] = stats([r.get(k) for r in rs])
            if m.exposure == "proxy":  # the first answer from v2 through the proxy, against the gate passing
                ms["v2_minus_healthy_ms"] = stats([
                    (r["alias"]["first_new"] - r["tool"]["timeline"]["healthy"]) * 1000 for r in rs
                    if r["alias"]["first_new"] and "healthy" in r["tool"]["timeline"]])  # fmt: skip
        ms["tool_wall_ms"] = stats([r["tool_wall_ms"] for r in rs])
        ms["notes"] = sorted({n for r in rs for n in r["tool"].get("notes", [])})
        s["methods"][m.key] = ms
    # Ratios within one round.
    s["ratios"] = {}
    for m in methods:
        obs = "host" if m.exposure == "port" else "alias"
        vs_start, vs_agent, vs_stop_start = [], [], []
        for r in rounds:
            if m.key not in r:
                continue
            gap = r[m.key][obs]["longest_gap_ms"]
            vs_start.append(gap / r["start"]["start_to_answer_ms"])
            vs_stop_start.append(gap / (r["start"]["start_to_answer_ms"] + r["start"]["stop_call_ms"]))
            if "agent-stop" in r and r["agent-stop"]["host"]["longest_gap_ms"]:
                vs_agent.append(gap / r["agent-stop"]["host"]["longest_gap_ms"])
        s["ratios"][m.key] = {"gap_over_start": stats(vs_start), "gap_over_stop_plus_start": stats(vs_stop_start),
                              "gap_over_agent_stop_first": stats(vs_agent)}  # fmt: skip
    return s


def _off_network_ms(events: list[list[Any]]) -> float | None:
    """From the old container's first disconnect to its next connect, in ms (None: it never came back)."""
    gone = next((t for t, action, who in events if who == "old" and action == "disconnect"), None)
    back = next(
        (t for t, action, who in events if who == "old" and action == "connect" and gone and t > gone), None
    )
    return round((back - gone) * 1000, 1) if gone and back else None
