"""`agent status`: each watched entry as it is now, with its problems first; exit 1 when any is in error."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

from agent import app
from agent.config import Config, Watch
from agent.model import ContainerInfo, short_digest
from agent.reconcile.seen import label_failure, seen_of
from agent.secret import redact
from agent.ui.snapshot import entries, events, with_problems

EXIT_OK, EXIT_FAILED = 0, 1


def status(cfg: Config, *, as_json: bool) -> int:
    """From a live look at the engine; the page and `/api/status` show the same from the last pass's record
    (agent/ui/snapshot.py builds both)."""
    from agent.registries.acr import load_sources  # the ACR SDK only when an ACR watch needs it

    state, runtime = app.state(cfg), app.runtime(cfg)
    sources = load_sources(cfg.agent.state_dir)  # which ACR source answered last, per repository
    found = app.discovered(cfg, runtime, app.local_services(cfg, runtime))
    rows = [label_failure(r) for r in (*found.failed, *found.skipped)]
    look, now = app.observer(cfg, state, runtime), time.time()
    watches = (*cfg.watches, *found.watches)
    for w in watches:
        info, problem = look(w)
        rows.append(seen_of(w, info, problem or _problem(w, info)))
    by_name = {w.container: w for w in watches}
    out = entries(rows, state, sources, cfg, by_name)
    failed = {r.container for r in found.failed}
    out = with_problems(out, by_name, failed)
    bad = any(e["in_error"] for e in out)
    if as_json:
        doc = {"ok": not bad, "containers": out, "events": events(state, now), "generated": now}
        print(redact(json.dumps(doc, indent=2)))
    else:
        for c in out:
            _print(c)
    return EXIT_FAILED if bad else EXIT_OK


def _problem(w: Watch, info: ContainerInfo | None) -> str | None:
    """What is wrong with the container itself, with what to do."""
    if w.kind == "service":
        return None if info is not None else f"service {w.container} not found"
    if info is None:
        if w.optional:
            return f"container {w.container} not found (optional = true: skipped)"
        return (
            f"container {w.container} not found: start it, fix the name in the config, or set optional = true"
        )
    if info.broken:
        return f"container is {info.broken}: see `docker logs {w.container}`"
    if not info.running:
        return (
            f"container is stopped (exit code {info.exit_code}): not updated while stopped unless "
            f"start_stopped = true; `docker start {w.container}` to run it"
        )
    return None


def _signed(word: str | None) -> str:
    return {"signed": "  signed ✔", "unsigned": "  unsigned"}.get(word or "", "")


def _when(ts: float | None) -> str:
    if not ts:
        return "never"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print(c: dict[str, Any]) -> None:
    if c.get("error"):
        print(
            f"{c['container']}  ({c['image']})  [labels] {'failed' if c['in_error'] else 'skipped'}: {c['error']}"
        )
        return
    check = c["last_check"] or {}
    where = f" on {c['docker_host']}" if c["docker_host"] else ""
    print(redact(f"{c['container']}  ({c['image']}){'  [service]' if c['kind'] == 'service' else ''}{where}"))
    for key in ("problem", "in_flight"):
        if c[key]:
            print(redact(f"  {key.replace('_', ' '):<9} {c[key]}"))
    print("  settings  " + ", ".join(f"{k}: {v}" for k, v in c["settings"].items()))
    version = f"  {c['version']['text']}" if c.get("version") else ""
    sig = c["signature"] or {}
    unproven = "  [unproven: in flight]" if c.get("running_unproven") else ""
    print(f"  running   {c['running_digest'] or '-'}{version}{_signed(sig.get('running'))}{unproven}")
    print(
        f"  latest    {check.get('latest_digest') or '-'}{_signed(sig.get('latest'))}"
        f"  (last check: {_when(check.get('time'))})"
    )
    if check.get("status") == "failed":
        print(redact(f"  last pass failed: {check.get('error')}"))
    if c["source"]:
        print(f"  source    {c['source']}")
    if c["pinned"]:
        print(f"  pinned    {c['pinned']}  (`agent unpin {c['container']}` to follow the tag again)")
    for d, why in c["quarantined"].items():
        print(redact(f"  quarantined {d}: {why}"))
    for h in c["history"][:5]:
        print(
            redact(
                f"  {_when(h['started'])}  {h['outcome']:<12} {short_digest(h['from_digest'])} → "
                f"{short_digest(h['to_digest'])}  {h['duration']:.1f}s{'  ' + h['error'] if h['error'] else ''}"
            )
        )
