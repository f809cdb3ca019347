"""Scenario 4: footprint. Cold start of `agent once` with nothing to do, its imports, and `agent run` memory.

* cold start: `agent once` for N = 10 up-to-date containers (what cron runs every minute), beside
  `python -c pass` and `agent --version` to show where the time goes;
* `python -X importtime` of that same `agent once`: the heaviest imports (median over the runs);
* `agent run` resident memory (VmRSS) once idle after start;
* 1,000 passes through the daemon: `agent run` with the webhook on loopback and debounce "0s", each
  pass asked for by POST /v1/update and awaited on /healthz, RSS sampled every 100 passes;
* 1,000 passes in-process (bench/reconcile_loop.py): reconcile(ctx) in a loop, RSS every 50;
* the status page: idle RSS of `agent run` with a `[metrics]` listener while no one looks, then after
  one look at `GET /` and after 200 (`--page-only` runs only this; `--tree DIR` measures another
  checkout's agent/, e.g. main exported with `git archive main | tar -x -C /tmp/main`).

    python -m bench.footprint [--containers 10] [--passes 1000] [--reps 10] [--quick]
    python -m bench.footprint --page-only [--tree /tmp/main]
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench import common
from bench.common import World, log
from tests.support.images import free_port
from tests.support.world import opener, stop_processes, wait_port


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--containers", type=int, default=10)
    p.add_argument("--passes", type=int, default=1000, help="passes for the memory tests")
    p.add_argument("--page-only", action="store_true", help="only the status page's memory")
    p.add_argument("--tree", type=Path, help="with --page-only: the checkout whose agent/ runs")
    a = p.parse_args(argv)
    reps = a.reps or (2 if a.quick else 10)
    passes = 30 if a.quick else a.passes
    n = a.containers
    started = time.monotonic()
    out: dict[str, Any] = {"containers": n, "reps": reps, "passes": passes}
    with World("footprint", shared_registry=a.shared_registry, keep=a.keep, fake_nagle=a.fake_nagle) as w:
        out["facts"] = w.facts
        repos = [f"r{i}" for i in range((n + 4) // 5)]
        for r in repos:
            w.push(r, f"{r}-v1")
        names = w.run_many([(f"f{i:03d}", repos[i // 5]) for i in range(n)])
        watches = [{"container": c, "image": w.ref(repos[i // 5])} for i, c in enumerate(names)]
        cfg = w.agent_config("footprint.toml", watches)
        env = w.agent_env()
        if a.page_only:
            out["status_page"] = _page_idle(w, watches, a.tree)
            common.write_result("footprint-page", a.quick, out)
            return 0
        common.run_measured(
            common.agent_cmd("once", "-c", str(cfg)), env_vars=env, cwd=w.dir
        )  # warm the page cache

        log("cold start")
        rows: dict[str, list[Any]] = {"python -c pass": [], "agent --version": [], "agent once": []}
        passes_in_once: list[float | None] = []
        for _ in range(reps):
            for label, cmd in (("python -c pass", [sys.executable, "-c", "pass"]),
                               ("agent --version", common.agent_cmd("--version")),
                               ("agent once", common.agent_cmd("once", "--log-json", "-c", str(cfg)))):  # fmt: skip
                proc = common.run_measured(cmd, env_vars=env, cwd=w.dir)
                if proc.rc != 0:
                    raise SystemExit(f"{label} exited {proc.rc}: {proc.stderr[-1000:]}")
                rows[label].append(proc)
                if label == "agent once":
                    passes_in_once.append(common.agent_pass_seconds(proc.stderr))
        out["cold_start"] = {
            k: {"wall": common.stats(p.wall for p in v), "cpu": common.stats(p.cpu for p in v)}
            for k, v in rows.items()
        }
        out["cold_start"]["agent once"]["pass"] = common.stats(passes_in_once)
        # The same without any bytecode cache (PYTHONDONTWRITEBYTECODE=1, editable install): every module compiled.
        raw = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"} | {"PYTHONDONTWRITEBYTECODE": "1"}
        uncached = [
            common.run_measured(common.agent_cmd("once", "-c", str(cfg)), env_vars=raw, cwd=w.dir)
            for _ in range(max(2, reps // 2))
        ]
        out["cold_start"]["agent once, no bytecode cache"] = {"wall": common.stats(p.wall for p in uncached),
                                                              "cpu": common.stats(p.cpu for p in uncached)}  # fmt: skip

        log("import time")
        out["imports"] = importtime(cfg, env, w.dir, 3 if a.quick else 7)

        log("agent run: idle memory")
        out["daemon_idle"] = _daemon_idle(w, watches)
        log("agent run: the status page's memory")
        out["status_page"] = _page_idle(w, watches, None)
        log(f"agent run: {passes} passes through the daemon")
        out["daemon_passes"] = _daemon_passes(w, watches, passes, 10 if a.quick else 100)
        log(f"in-process: {passes} passes")
        loop = subprocess.run([sys.executable, "-m", "bench.reconcile_loop", "-c", str(cfg), "--passes", str(passes),
                               "--every", "10" if a.quick else "50"], cwd=common.ROOT, env=env, capture_output=True,
                              text=True, timeout=3600)  # fmt: skip
        if loop.returncode != 0:
            raise SystemExit(f"reconcile_loop exited {loop.returncode}: {loop.stderr[-1500:]}")
        out["in_process"] = json.loads(loop.stdout)
        out["in_process"]["growth"] = _growth(out["in_process"]["samples"])
    out["seconds"] = round(time.monotonic() - started, 1)
    common.write_result("footprint", a.quick, out)
    return 0


# ---- imports -------------------------------------------------------------------------------------
def importtime(cfg: Path, env: dict[str, str], cwd: Path, runs: int) -> dict[str, Any]:
    """Parse `python -X importtime` (post-order, indented by depth) of `agent once`."""
    exe = common.agent_cmd("once", "-c", str(cfg))
    cmd = (
        [sys.executable, "-X", "importtime", *exe]
        if exe[0] != sys.executable
        else [sys.executable, "-X", "importtime", *exe[1:]]
    )
    per_run: list[dict[str, Any]] = []
    for _ in range(runs):
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
        per_run.append(_parse_importtime(proc.stderr))
    total = common.stats(r["total_us"] / 1e6 for r in per_run)
    heavy: dict[str, list[float]] = {}
    packages: dict[str, list[float]] = {}
    for r in per_run:
        for name, us in r["direct"].items():
            heavy.setdefault(name, []).append(us / 1e6)
        for name, us in r["self_by_package"].items():
            packages.setdefault(name, []).append(us / 1e6)
    top = sorted(((k, common.stats(v)) for k, v in heavy.items()), key=lambda kv: -kv[1]["median"])[:15]
    pk = sorted(((k, common.stats(v)) for k, v in packages.items()), key=lambda kv: -kv[1]["median"])[:15]
    agent_self = {
        m: common.stats(r["agent_self"].get(m, 0) / 1e6 for r in per_run) for m in per_run[-1]["agent_self"]
    }
    agent_top = sorted(agent_self.items(), key=lambda kv: -kv[1]["median"])[:8]
    return {"runs": runs, "total": total, "agent_modules": common.stats(r["agent_us"] / 1e6 for r in per_run),
            "agent_self": agent_top,
            "heaviest_direct": top, "self_by_package": pk, "importers": per_run[-1]["importers"]}  # fmt: skip


def _parse_importtime(text: str) -> dict[str, Any]:
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        self_us, cum_us, raw = int(parts[0]), int(parts[1]), parts[2]
        depth = (len(raw) - len(raw.lstrip(" ")) - 1) // 2
        rows.append((depth, raw.strip(), self_us, cum_us))
    # post-order: a module's children are the lines just before it with depth + 1
    parent: dict[int, str | None] = {}
    stack: list[tuple[int, int]] = []  # (depth, row index) of modules waiting for their parent
    for i, (depth, _name, _s, _c) in enumerate(rows):
        while stack and stack[-1][0] > depth:
            child_depth, child = stack.pop()
            parent[child] = rows[i][1] if child_depth == depth + 1 else None
        stack.append((depth, i))
    direct: dict[str, int] = {}
    importers: dict[str, str] = {}
    by_pkg: dict[str, int] = {}
    total = sum(c for d, _n, _s, c in rows if d == 0)
    agent_us = sum(s for _d, n, s, _c in rows if n == "agent" or n.startswith("agent."))
    for i, (depth, name, self_us, cum_us) in enumerate(rows):
        top = name.split(".")[0]
        by_pkg[top] = by_pkg.get(top, 0) + self_us
        if top == "agent":
            continue
        up = parent.get(i)
        if depth == 0 or (up and (up == "agent" or up.startswith("agent."))):
            direct[name] = direct.get(name, 0) + cum_us
            importers[name] = up or "(start-up)"
    return {
        "total_us": total,
        "agent_us": agent_us,
        "direct": direct,
        "self_by_package": by_pkg,
        "importers": importers,
        "agent_self": {n: s for _d, n, s, _c in rows if n == "agent" or n.startswith("agent.")},
    }


# ---- the daemon ----------------------------------------------------------------------------------
def _start_daemon(
    w: World, watches: list[dict[str, Any]], name: str, extra: str = ""
) -> tuple[subprocess.Popen[bytes], Path]:
    cfg = w.agent_config(f"{name}.toml", watches, extra=extra, state=f"state-{name}")
    logf = w.dir / f"{name}.log"
    with open(logf, "wb") as fh:
        proc = subprocess.Popen(common.agent_cmd("run", "--log-json", "-c", str(cfg)), stdout=fh, stderr=subprocess.STDOUT,
                                env=w.agent_env(), cwd=w.dir)  # fmt: skip
    return proc, logf


def _daemon_idle(w: World, watches: list[dict[str, Any]]) -> dict[str, Any]:
    proc, logf = _start_daemon(w, watches, "idle")
    try:
        common.wait_agent_event(proc, logf, "pass.done", 60)
        first = common.rss_kib(proc.pid)
        time.sleep(5)
        idle = common.rss_kib(proc.pid)
    finally:
        stop_processes([proc], 30)
    return {"rss_after_first_pass_kib": first, "rss_idle_kib": idle}


def _page_idle(w: World, watches: list[dict[str, Any]], tree: Path | None) -> dict[str, Any]:
    """RSS of `agent run` with a loopback [metrics] listener: idle and unlooked-at (median of 5 samples a
    second apart, after the first pass), after one `GET /`, after 200. `tree`: run that checkout's agent/."""
    port = free_port()
    cfg = w.agent_config(
        "page.toml", watches, extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\n', state="state-page"
    )
    logf = w.dir / "page.log"
    env = w.agent_env() | ({"PYTHONPATH": str(tree.resolve())} if tree else {})
    cmd = [sys.executable, "-m", "agent", "run", "--log-json", "-c", str(cfg)] if tree else common.agent_cmd(
        "run", "--log-json", "-c", str(cfg))  # fmt: skip
    with open(logf, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tree or w.dir)

    def settled() -> int:
        samples = []
        for _ in range(5):
            time.sleep(1.0)
            samples.append(common.rss_kib(proc.pid))
        return sorted(samples)[2]

    def look() -> int:
        try:
            with opener().open(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return e.code

    try:
        wait_port(port, 30, "agent run's metrics listener")
        common.wait_agent_event(proc, logf, "pass.done", 60)
        out: dict[str, Any] = {"tree": str(tree) if tree else "this checkout", "idle_kib": settled()}
        out["first_look_status"] = look()
        out["after_one_look_kib"] = settled()
        for _ in range(199):
            look()
        out["after_200_looks_kib"] = settled()
    finally:
        stop_processes([proc], 30)
    return out


def _daemon_passes(w: World, watches: list[dict[str, Any]], passes: int, every: int) -> dict[str, Any]:
    token, port = secrets.token_hex(16), free_port()
    extra = f'[webhook]\nlisten = "127.0.0.1:{port}"\ntoken = "{token}"\ndebounce = "0s"\n'
    proc, logf = _start_daemon(w, watches, "passes", extra)
    samples: list[tuple[int, int]] = []
    t0 = time.monotonic()
    try:
        wait_port(port, 30, "agent run's webhook")
        common.wait_agent_event(proc, logf, "pass.done", 60)
        done = _health(port, token)["passes"]
        samples.append((0, common.rss_kib(proc.pid)))
        start_rss_idle = samples[0][1]
        for i in range(1, passes + 1):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/update", data=b"", method="POST",
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            with opener().open(req, timeout=10) as resp:
                if resp.status != 202:
                    raise SystemExit(f"POST /v1/update answered {resp.status}")
            deadline = time.monotonic() + 60
            while _health(port, token)["passes"] < done + i:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"pass {i} did not finish: {logf.read_text(errors='replace')[-1500:]}")
                time.sleep(0.005)
            if i % every == 0:
                samples.append((i, common.rss_kib(proc.pid)))
    finally:
        stop_processes([proc], 30)
    return {"samples": samples, "rss_start_kib": start_rss_idle, "seconds": round(time.monotonic() - t0, 1),
            "growth": _growth(samples)}  # fmt: skip


def _health(port: int, token: str) -> dict[str, Any]:
    """/healthz with the token: the details (pass count), not only liveness."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {token}"}
    )
    with opener().open(request, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def _growth(samples: list[list[int] | tuple[int, int]]) -> dict[str, Any]:
    """RSS change from the first pass (caches filled) to the last, and a least-squares slope per 1,000 passes."""
    pts = [(float(i), float(r)) for i, r in samples if i >= 1]
    if len(pts) < 2:
        return {}
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in pts) / (sum((x - mx) ** 2 for x in xs) or 1)
    return {"first_kib": ys[0], "last_kib": ys[-1], "max_kib": max(ys), "delta_kib": ys[-1] - ys[0],
            "slope_kib_per_1000": round(slope * 1000, 1)}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
