"""Downtime: the page (docs/benchmarks-downtime.md) from a run's results; hand-written findings kept."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bench.downtime import DOC, ROOT, log
from bench.downtime import analyse as loops
from bench.downtime.analyse import (
    EXTRAS,
    METHODS,
    OBSERVERS,
    Method,
    _off_network_ms,
    stats,
    summarize,
)


def rerender(path: Path) -> int:
    out = json.loads(path.read_text())
    methods = [m for m in METHODS + EXTRAS if m.key in out["methods"]]
    out["summary"] = summarize(out, methods)
    path.write_text(json.dumps(out, indent=1) + "\n")
    target = (
        DOC
        if out.get("to_doc", not out["quick"] and out["runs"] >= 3)
        else path.parent / "benchmarks-downtime.md"
    )
    target.write_text(render(out, methods, path.parent))
    log(f"wrote {target.relative_to(ROOT)} from {path}")
    return 0


# ---- the report -----------------------------------------------------------------------------------------
def fmt(st: dict[str, Any] | None, digits: int = 0) -> str:
    if not st or not st.get("n") or st.get("median") is None:
        return "–"
    f = f"{{:.{digits}f}}"
    if st["n"] == 1 or st["min"] == st["max"]:
        return f.format(st["median"])
    return f"{f.format(st['median'])} ({f.format(st['min'])}–{f.format(st['max'])})"


ANALYSIS_BEGIN, ANALYSIS_END = "<!-- analysis:begin -->", "<!-- analysis:end -->"


HANDOVER_BEGIN, HANDOVER_END = "<!-- handover:begin -->", "<!-- handover:end -->"


def kept_block(begin: str, end: str) -> str:
    """A block of docs/benchmarks-downtime.md that a full run keeps (hand-written, or another mode's)."""
    old = DOC.read_text() if DOC.exists() else ""
    m = re.search(re.escape(begin) + ".*?" + re.escape(end), old, re.S)
    return m.group(0) if m else f"{begin}\n*(Not measured yet.)*\n{end}"


def kept_analysis() -> str:
    """The hand-written findings in docs/benchmarks-downtime.md, kept when the script rewrites the page."""
    return kept_block(ANALYSIS_BEGIN, ANALYSIS_END)


def write_handover(out: dict[str, Any]) -> int:
    block = render_handover(out)
    text = DOC.read_text()
    pattern = re.escape(HANDOVER_BEGIN) + ".*?" + re.escape(HANDOVER_END)
    DOC.write_text(re.sub(pattern, lambda _m: block, text, flags=re.S) if re.search(pattern, text, re.S) else
                   text.replace(ANALYSIS_END, ANALYSIS_END + "\n\n" + block, 1))  # fmt: skip
    log(f"wrote the hand-over block of {DOC.relative_to(ROOT)}")
    return 1 if out["errors"] else 0


def render_handover(out: dict[str, Any]) -> str:
    runs, f, code = out["runs"], out.get("facts", {}), out["agent_code"]
    dirty = f" with uncommitted changes to {', '.join(code['dirty_files'])}" if code["dirty_files"] else ""
    L = [
        HANDOVER_BEGIN,
        f"### Start-first, {out['updates']} updates, clients that never retry",
        "",
        f"Written by `python -m bench.downtime --handover {out['updates']}` ({out['seconds'] / 60:.0f} min, {f.get('date')}, "
        f"load average {f.get('loadavg_at_start')} → {out.get('loadavg_at_end')}; cr-agent {code['commit']}{dirty}). "
        f"{len(runs)} updates of a fresh v1 → v2 each, set up as in section 1. Neither the proxy nor the in-network "
        "client retries: one lookup, the first address, one connection, given up after 2 s (the kernel's own "
        "ARP and SYN retries within those 2 s still happen). *Stalled*: answered after more than 0.9 s.",
        "",
        "*After the gate*: sent once `step healthy` was logged, that is during the hand-over and after it; "
        "earlier failures are the old container alone not answering within 2 s on the loaded host.",
        "",
        "| requests from | failed, all updates | of them after the gate | of | updates with a failure after the gate "
        "| stalled, all updates | longest gap (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for obs, label in OBSERVERS.items():
        got = [(r[obs], r["tool"]["timeline"].get("healthy", 0.0)) for r in runs if obs in r]
        if not got:
            continue
        late = [sum(1 for x in g["around_gap"] if x[2] != "ok" and (x[0] or 0) >= t) for g, t in got]
        gaps = stats([g["longest_gap_ms"] for g, _ in got])
        L.append(f"| {label} | {sum(g['failed'] for g, _ in got)} | {sum(late)} | {sum(g['requests'] for g, _ in got)} | "
                 f"{sum(1 for n in late if n)}/{len(got)} | {sum(g['stalled_over_0_9s'] for g, _ in got)} | {fmt(gaps)} |")  # fmt: skip
    fails = Counter()  # type: Counter[str]
    for r in runs:
        for obs, label in OBSERVERS.items():
            for k, v in (r.get(obs) or {}).get("failures", {}).items():
                fails[f"{label}: {k}"] += v
    if fails:
        L += ["", "Failures: " + "; ".join(f"{k} ×{v}" for k, v in sorted(fails.items())) + "."]
    off = [_off_network_ms(r.get("network_events") or []) for r in runs]
    if any(x is not None for x in off):
        L += ["", "The old container off its network during the drain (the engine's `disconnect` → `connect` events; "
              f"a request that resolved it just before must get its kernel retry, 1 s later, inside this): {fmt(stats(off))} ms."]  # fmt: skip
    phases = [r["tool"]["phases"] for r in runs]
    if phases:
        L += ["", f"`step healthy` → pass done (publish, drain with its 2 s grace, renames, stop, remove): "
              f"{fmt(stats([p['healthy_to_pass_done_ms'] for p in phases]))} ms."]  # fmt: skip
    if out["errors"]:
        L += ["", f"Errors: {len(out['errors'])} (see bench/work/results/handover.json)."]
    L.append(HANDOVER_END)
    return "\n".join(L)


def render(out: dict[str, Any], methods: list[Method], res: Path) -> str:
    s, f, ms = out["summary"], out.get("facts", {}), out["summary"]["methods"]
    code = out["agent_code"]
    dirty = f", with uncommitted changes to {', '.join(code['dirty_files'])} (diff {code['diff_sha256']})" if code[
        "dirty_files"] else ""  # fmt: skip
    L = [
        "# Benchmark: downtime during an update",
        "",
        "How long a service stops answering while it is updated, for cr-agent's two strategies and for two peers: "
        "Ouroboros and the webhook receiver of the blog this project started from. Produced by bench/downtime/ "
        "(its package docstring, bench/downtime/__init__.py, describes the set-up; run.py measures, analyse.py computes, render.py writes this page); the numbers below are written by the script, the prose around them "
        "explains what the script measures.",
        "",
        f"Reproduce: `cd /work/main && .venv/bin/{out['command']}` ({out['seconds'] / 60:.0f} min here). "
        "`--quick` runs each method once in about a minute and writes to bench/work/quick/.",
        "",
        f"Machine: {f.get('cores')} cores ({f.get('cpu')}), {f.get('memory_gib')} GiB RAM, kernel {f.get('kernel')}, "
        f"Docker {f.get('docker')} (API {f.get('docker_api')}, {f.get('storage_driver')}), Python {f.get('python')}; "
        f"{f.get('date')}. The Docker engine is shared with other engineers' tests and benchmarks: "
        f"{f.get('running_containers_on_host')} containers were running, load average {f.get('loadavg_at_start')} "
        f"at the start and {out.get('loadavg_at_end')} at the end, so absolute times are those of a busy 2-core "
        "host; compare within a round.",
        "",
        f'cr-agent measured: commit {code["commit"]}{dirty}. Gate: `min_uptime = "{loops.GATE["min_uptime"]}"` (the '
        "image has no HEALTHCHECK and no probe is configured).",
        "",
        f"Each figure is the median of {out['runs']} runs with (min–max). Rounds are interleaved: round *i* runs every "
        "method once, so ratios are taken within a round.",
        "",
        "## Findings",
        "",
        "Written by hand from the full run below; the script keeps this block when it rewrites the page.",
        "",
        kept_analysis(),
        "",
        kept_block(HANDOVER_BEGIN, HANDOVER_END),
        "",
        "## 1. Requests that failed during the update",
        "",
        f"The host loops start one GET every {loops.PERIOD * 1000:.0f} ms on a published port, every "
        f"{loops.PROXY_PERIOD * 1000:.0f} ms through the proxy by alias and every {loops.NAME_PERIOD * 1000:.0f} ms by container "
        f"name, each on a new TCP connection with a {loops.REQUEST_TIMEOUT:.0f} s timeout, whatever the earlier requests are "
        f"doing (but never more than {loops.MAX_IN_FLIGHT} pending), at most {loops.LOOP_MAX_REQUESTS} requests or "
        f"{loops.LOOP_MAX_SECONDS:.0f} s; they run from before the tool starts until 0.5 s after every loop has seen v2. "
        "The in-network client sends one request at a time, 20 ms apart. A request fails unless it gets `200` with "
        "the page of v1 or v2. *Longest gap*: the longest time between two successful answers (its floor is the "
        "loop's period). *Stalled*: answered, but after more than 0.9 s.",
        "",
        "| method | requests from | failed | of | longest gap (ms) | stalled | runs with failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        for obs, label in OBSERVERS.items():
            if m.key in ms and obs in ms[m.key]:
                o = ms[m.key][obs]
                first = obs in ("host", "alias")
                L.append(f"| {m.label if first else '″'} | {label} | {fmt(o['failed'])} | {fmt(o['requests'])} | "
                         f"{fmt(o['longest_gap_ms'])} | {fmt(o['stalled_over_0_9s'])} | "
                         f"{o['runs_with_failures']}/{ms[m.key]['runs']} |")  # fmt: skip
    st = s["start"]
    L += [
        "",
        "The container's own times, the same image, measured in every round (2 ms loop on a published port):",
        "",
        "| | ms |",
        "|---|---|",
        f"| `docker start` → first answer (the container's start time) | {fmt(st.get('start_to_answer_ms'))} |",
        f"| `docker start` call | {fmt(st.get('start_call_ms'))} |",
        f"| `docker stop` call (the shell exits on SIGTERM at once) | {fmt(st.get('stop_call_ms'))} |",
        f"| `docker stop` called → last answer | {fmt(st.get('stop_to_last_answer_ms'))} |",
        "",
        "Longest gap (published port, or the proxy by alias) over the container's start time, and over its stop + "
        "start time, and over cr-agent stop-first's gap, within each round:",
        "",
        "| method | gap / start | gap / (stop + start) | gap / cr-agent stop-first's |",
        "|---|---|---|---|",
    ]
    for m in methods:
        r = s["ratios"].get(m.key)
        if r and r["gap_over_start"]["n"]:
            L.append(f"| {m.label} | {fmt(r['gap_over_start'], 2)} | {fmt(r['gap_over_stop_plus_start'], 2)} | "
                     f"{fmt(r['gap_over_agent_stop_first'], 2) if m.key != 'agent-stop' else '1'} |")  # fmt: skip
    L += ["", "How the failed requests failed, all runs. *to the old/new container*: the address the proxy or the "
          "client tried belonged to it; *after hanging*: no answer and no error until the proxy or the client gave "
          "up (2 s), otherwise the failure came at once (refused, reset: what a retrying proxy such as nginx's "
          "default `proxy_next_upstream error` would retry on the next address); *no address*: the name did not "
          "resolve (here a lookup of an unknown name is forwarded to the host's resolvers and times out):",
          ""]  # fmt: skip
    for m in methods:
        for obs, label in OBSERVERS.items():
            fails = (ms.get(m.key) or {}).get(obs, {}).get("failures")
            if fails:
                L.append(f"* {m.label}, {label}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(fails.items())))
    race = s["dns_race"]
    if race["in_dns_ms"]["n"]:
        L += [
            "",
            "When a starting container becomes reachable under its alias (ms after `docker start` is called; another "
            "container already answers as `web`; a client loop resolves `web` and requests the new address as soon "
            "as the lookup returns it):",
            "",
            "| the alias resolves to the new container | the start call returns | the new container first answers |",
            "|---|---|---|",
            f"| {fmt(race['in_dns_ms'])} | {fmt(race['start_call_ms'])} | {fmt(race['first_answer_ms'])} |",
        ]
    L += [
        "",
        "## 2. cr-agent: new digest seen → new container healthy",
        "",
        "Timed from the agent's own DEBUG log (`agent once --log-level DEBUG --log-json`; its events' timestamps, "
        "1 ms): from `plan.update` (`replacing A → B`), which is logged once the new image has been pulled (so the "
        "pull is excluded), to the `replace.step` event with `step` `healthy`, logged when the gate has passed. "
        'The gate is `min_uptime = "1s"`, checked every 0.5 s, '
        "so about 1 s of it is the gate by design. *pass done* also includes retiring the old container.",
        "",
    ]
    cols = [m for m in methods if m.tool == "agent" and m.key in ms and "phases" in ms[m.key]]
    L += ["| ms | " + " | ".join(m.label.replace("cr-agent ", "") for m in cols) + " |",
          "|---|" + "---|" * len(cols)]  # fmt: skip
    rows = [("seen → healthy", "seen_to_healthy_ms"), ("seen → `start_new`", "seen_to_start_new_ms"),
            ("`stop_old` → `start_new` (stop-first)", "stop_old_to_start_new_ms"),
            ("`start_new` → `health_wait` (the start call)", "start_call_ms"), ("the gate", "gate_ms"),
            ("healthy → pass done", "healthy_to_pass_done_ms"), ("seen → pass done", "seen_to_pass_done_ms")]  # fmt: skip
    for label, k in rows:
        L.append(f"| {label} | " + " | ".join(fmt(ms[m.key]["phases"].get(k)) for m in cols) + " |")
    a = ms.get("agent-stop")
    if a and "gap_from_minus_stop_old_ms" in a:
        L += [
            "",
            "Where cr-agent stop-first's gap sits against its log: the last answer before the gap comes "
            f"{fmt(a['gap_from_minus_stop_old_ms'])} ms after `step stop_old`, the first answer after it "
            f"{fmt(a['gap_to_minus_start_new_ms'])} ms after `step start_new`.",
        ]
    before = [
        (m, ms[m.key]["v2_minus_healthy_ms"])
        for m in cols
        if ms[m.key].get("v2_minus_healthy_ms", {}).get("n")
    ]
    if before:
        L += ["", "The first answer from v2 through the proxy, in ms after `step healthy` (negative: v2 was already "
              "answering clients before its gate had passed):", ""]  # fmt: skip
        L += [f"* {m.label}: {fmt(st)}" for m, st in before]
    notes = {m.label: ms[m.key]["notes"] for m in methods if ms.get(m.key, {}).get("notes")}
    if out.get("ouroboros"):
        L += ["", f"Ouroboros: {out['ouroboros']}, run as `ouroboros --run-once --monitor <container> --repo-user … "
              "--repo-pass … --skip-startup-notifications` with an empty DOCKER_CONFIG and no notifiers."]  # fmt: skip
        for label, ns in notes.items():
            L.append(f"{label}: {'; '.join(ns)}.")
    if out["errors"]:
        L += ["", "Errors:", ""] + [
            f"* {e['method']} run {e['run']}: {e['error'][:300]!r}" for e in out["errors"]
        ]
    L += [
        "",
        f"Raw data, with the requests around each gap: {res.relative_to(ROOT)}/downtime.json (bench/work/ is not committed).",
    ]
    return "\n".join(L) + "\n"
