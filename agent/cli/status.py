"""`agent status`: each watched entry as it is now, with its problems first; exit 1 when any is in error."""

from __future__ import annotations

import datetime
import json
from typing import Any

from agent import app
from agent.config import Config, Watch
from agent.config.labels import origins
from agent.errors import AgentError
from agent.model import ContainerInfo, Version, digest_for_repo, short_digest
from agent.secret import redact
from agent.signatures.gate import signature_status

EXIT_OK, EXIT_FAILED = 0, 1


def status(cfg: Config, *, as_json: bool) -> int:
    from agent.registries.acr import load_sources  # the ACR SDK only when an ACR watch needs it

    state, runtime = app.state(cfg), app.runtime(cfg)
    sources = load_sources(cfg.agent.state_dir)  # which ACR source answered last, per repository
    out: list[dict[str, Any]] = []
    found = app.discovered(cfg, runtime, app.local_services(cfg, runtime))
    for r in (*found.failed, *found.skipped):
        out.append({"container": r.container, "image": r.image, "origin": "labels", "error": r.error,
                    "in_error": r in found.failed})  # fmt: skip
    look = app.observer(cfg, state, runtime)
    in_flight = {
        e.container: f"{e.kind} {e.step}" for kind in ("container", "service") for e in state.journal(kind)
    }
    for w in (*cfg.watches, *found.watches):
        info, problem = look(w)
        problem = problem or _problem(w, info)
        running = digest_for_repo(list(info.repo_digests), w.image.repo) if info else []
        hist = [_iso(h.as_json(), "started", "finished") for h in state.history(w.container, limit=10)]
        check = _iso(state.last_check(w.container), "time")
        out.append({
            "container": w.container, "kind": w.kind, "docker_host": w.docker_host, "image": str(w.image),
            "exists": info is not None, "problem": problem, "in_flight": in_flight.get(w.container),
            "running": bool(info and info.running), "running_digest": running[0] if running else None,
            "version": _version(runtime, w, info), "last_check": check, "last_deploy": hist[0] if hist else None,
            "pinned": state.pinned(w.container), "quarantined": state.quarantined(w.container),
            "history": hist, "source": sources.get(str(w.image.repo)),
            "origin": w.origin, "settings": origins(w), "tag_pattern": str(w.pattern) if w.pattern else None,
            "signature": signature_status(cfg, state, w, running[0] if running else None),
            "in_error": bool(problem and not (info is None and w.optional))
            or (check or {}).get("status") == "failed",
        })  # fmt: skip
    bad = any(c["in_error"] for c in out)
    if as_json:
        print(redact(json.dumps({"ok": not bad, "containers": out}, indent=2)))
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
        return (f"container {w.container} not found: start it, fix the name in the config, "
                "or set optional = true")  # fmt: skip
    if info.broken:
        return f"container is {info.broken}: see `docker logs {w.container}`"
    if not info.running:
        return (f"container is stopped (exit code {info.exit_code}): not updated while stopped unless "
                f"start_stopped = true; `docker start {w.container}` to run it")  # fmt: skip
    return None


def _version(runtime: Any, w: Watch, info: ContainerInfo | None) -> dict[str, Any] | None:
    """The running image's OCI version labels (containers on the local engine)."""
    if info is None or w.kind != "container" or w.docker_host:
        return None
    try:
        v = Version.from_labels(runtime.image_labels(info.image_id))
    except AgentError:
        return None
    return {"version": v.version, "revision": v.revision, "source": v.source, "text": str(v)} if v else None


def _iso(d: dict[str, Any] | None, *keys: str) -> dict[str, Any] | None:
    """Beside each epoch float, the same time in ISO 8601 (`started` → `started_iso`)."""
    if d is None:
        return None
    out = dict(d)
    for k in keys:
        if isinstance(d.get(k), (int, float)):
            out[f"{k}_iso"] = datetime.datetime.fromtimestamp(d[k]).astimezone().isoformat(timespec="seconds")
    return out


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
    version = f"  {c['version']['text']}" if c["version"] else ""
    sig = c["signature"] or {}
    print(f"  running   {c['running_digest'] or '-'}{version}{_signed(sig.get('running'))}")
    print(f"  latest    {check.get('latest_digest') or '-'}{_signed(sig.get('latest'))}"
          f"  (last check: {_when(check.get('time'))})")  # fmt: skip
    if check.get("status") == "failed":
        print(redact(f"  last pass failed: {check.get('error')}"))
    if c["source"]:
        print(f"  source    {c['source']}")
    if c["pinned"]:
        print(f"  pinned    {c['pinned']}  (`agent unpin {c['container']}` to follow the tag again)")
    for d, why in c["quarantined"].items():
        print(redact(f"  quarantined {d}: {why}"))
    for h in c["history"][:5]:
        print(redact(f"  {_when(h['started'])}  {h['outcome']:<12} {short_digest(h['from_digest'])} → "
                     f"{short_digest(h['to_digest'])}  {h['duration']:.1f}s{'  ' + h['error'] if h['error'] else ''}"))  # fmt: skip
