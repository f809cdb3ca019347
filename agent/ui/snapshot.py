"""The status as data: `agent status --json`, `GET /api/status` and the page are all this.

`entries` adds what state.db knows (checks, history, pins, quarantine, journal) to what the engine
showed (`agent.reconcile.seen.seen_of`). `snapshot` takes the engine's side from the last pass's record, so it
makes no Docker and no registry call.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from agent.config import Config, Watch
from agent.deploy.inflight import in_flight
from agent.reconcile.seen import seen_of
from agent.signatures.gate import signature_status
from agent.state import State

TIMELINE_DAYS = 30
RECENT = 24 * 3600.0  # an update this recent shows as "updated at ..."


def state_word(e: Mapping[str, Any], now: float) -> str:
    """One word for an entry: updating, rolled_back, failed, pending, quarantined, pinned, updated,
    up_to_date, skipped or unknown (never checked)."""
    if e.get("error") and not e.get("kind"):
        return "failed"  # labels that are no watch entry
    if e.get("in_flight"):
        return "updating"
    check = e.get("last_check") or {}
    status = check.get("status")
    if status in ("rolled_back", "failed"):
        return str(status)
    if status == "would_update":
        return "pending"
    if check.get("latest_digest") and check["latest_digest"] in (e.get("quarantined") or {}):
        return "quarantined"
    if e.get("pinned"):
        return "pinned"
    deploy = e.get("last_deploy") or {}
    recent = status == "updated" or now - float(deploy.get("finished") or 0) < RECENT
    if status in ("updated", "up_to_date") and deploy.get("outcome") == "updated" and recent:
        return "updated"
    return str(status) if status in ("up_to_date", "skipped") else "unknown"


def entries(
    rows: Iterable[Mapping[str, Any]],
    state: State,
    sources: Mapping[str, Any],
    cfg: Config,
    watches: Mapping[str, Watch],
) -> list[dict[str, Any]]:
    """The full status of each entry, from its engine-side row (`watches`: the entries known by name, for
    their signature status; state.db and the key files only)."""

    flying = in_flight(state)
    now = time.time()
    out: list[dict[str, Any]] = []
    for row in rows:
        if "kind" not in row:  # a labelled container that is no valid entry
            out.append({**row, "state": "failed"})
            continue
        name = row["container"]
        hist = state.history(name, limit=10)
        fly = flying.get(name)
        entry: dict[str, Any] = {
            **row,
            "in_flight": fly.text if fly else None,
            "running_unproven": bool(fly and fly.unproven(row.get("container_id"))),
            "last_check": state.last_check(name),
            "last_deploy": hist[0].as_json() if hist else None,
            "pinned": state.pinned(name),
            "quarantined": state.quarantined(name),
            "history": ([fly.attempt] if fly else []) + [h.as_json() for h in hist],
            "source": sources.get(str(row.get("repository"))),
        }
        w = watches.get(name)
        entry["signature"] = signature_status(cfg, state, w, row.get("running_digest")) if w else None
        entry["state"] = state_word(entry, now)
        out.append(entry)
    return out


def with_problems(
    out: list[dict[str, Any]], watches: Mapping[str, Watch], failed_labels: Collection[str]
) -> list[dict[str, Any]]:
    """`in_error` for each entry (a problem, unless a missing optional one, or a failed last pass), and an
    ISO-8601 twin beside each epoch time."""
    for e in out:
        w = watches.get(e["container"])
        e["in_error"] = e["container"] in failed_labels or (
            w is not None
            and (
                bool(e.get("problem") and not (e.get("exists") is False and w.optional))
                or (e.get("last_check") or {}).get("status") == "failed"
            )
        )
        e["last_check"] = _iso(e.get("last_check"), "time")
        e["last_deploy"] = _iso(e.get("last_deploy"), "started", "finished")
        e["history"] = [_iso(h, "started", "finished") for h in e.get("history") or []]
    return out


def _iso(d: dict[str, Any] | None, *keys: str) -> dict[str, Any] | None:
    """Beside each epoch float, the same time in ISO 8601 (`started` → `started_iso`)."""
    if d is None:
        return None
    out = dict(d)
    for k in keys:
        if isinstance(d.get(k), (int, float)):
            out[f"{k}_iso"] = datetime.datetime.fromtimestamp(d[k]).astimezone().isoformat(timespec="seconds")
    return out


def events(state: State, now: float) -> list[dict[str, Any]]:
    """Every entry's deployments of the last TIMELINE_DAYS days, newest first."""
    since = now - TIMELINE_DAYS * 86400
    return [{"container": d.container, **d.as_json()} for d in state.history_since(since)]


def recorded_rows(cfg: Config, state: State) -> list[dict[str, Any]]:
    """The engine side as the last pass saw it: configured entries in config order, then labelled ones.
    An entry no pass has looked at yet says so in `problem`."""
    seen = state.seen()
    rows: list[dict[str, Any]] = []
    for w in cfg.watches:
        if w.container in seen:
            rows.append(seen.pop(w.container)[1])
        else:
            rows.append(
                {**seen_of(w, None, "not looked at yet: no pass since the agent started"), "exists": None}
            )
    configured = {w.container for w in cfg.watches}
    rows += [
        data for name, (_, data) in seen.items() if data.get("origin") == "labels" and name not in configured
    ]
    return rows


def snapshot(cfg: Config, state: State, agent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`agent status --json`'s shape from recorded state only, plus `agent` (the daemon's health)."""
    from agent.registries.acr import load_sources  # the ACR SDK only when an ACR watch needs it

    now = time.time()
    watches = {w.container: w for w in cfg.watches}
    rows = recorded_rows(cfg, state)
    found = entries(rows, state, load_sources(cfg.agent.state_dir), cfg, watches)
    failed = {r["container"] for r in rows if "kind" not in r}  # labels no watch entry can be made of
    containers = with_problems(found, watches, failed)
    out: dict[str, Any] = {
        "ok": not any(c["in_error"] for c in containers),
        "containers": containers,
        "events": events(state, now),
        "generated": now,
    }
    if agent is not None:
        alerts = state.build_alerts(now - TIMELINE_DAYS * 86400)
        out["agent"] = {
            **agent,
            "build_alerts": [{"build": k[len("build:") :], "state": f, "since": t} for k, f, t in alerts],
        }
    return out
