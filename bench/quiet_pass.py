"""Scenario 1: the cost of a quiet pass (nothing changed) for N watched containers over M repositories.

Per pass and per tool: wall time and CPU time of the whole process (wait4: the process and the
children it reaped, so the cron script's `docker` CLI calls count), the pass alone where the tool
says it (cr-agent's `pass.done` event, `seconds`; Ouroboros's update() timed by bench/peers/), ACR API
requests (the fake ACR's counters), registry requests and bytes (the registry's access log lines
written during the pass), pulls (the engine's `docker events` of type image/pull for our namespace),
and the CPU the engine and the registry spent meanwhile (dockerd is shared with anyone else on the
machine: noisy).

    python -m bench.quiet_pass [--sizes 1,10,50,200] [--per-repo 5] [--reps 5] [--quick]
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CRON_SCRIPT,
    ROOT,
    World,
    agent_cmd,
    agent_events,
    agent_pass_seconds,
    log,
    ouroboros_cmd,
    ouroboros_pass_seconds,
    ouroboros_python,
    ouroboros_versions,
    parser,
    results_dir,
    run_measured,
    stats,
    summarize_requests,
    write_result,
)

TOOLS = ("cr-agent", "ouroboros", "cron-script")
METRICS = (
    "wall",
    "cpu",
    "pass",
    "acr_requests",
    "registry_requests",
    "registry_bytes",
    "pulls",
    "engine_cpu",
)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,10,50,200", help="N values, comma-separated")
    p.add_argument("--per-repo", type=int, default=5, help="containers per repository: M = ceil(N / this)")
    p.add_argument(
        "--reps-large",
        type=int,
        default=3,
        help="repetitions for N >= 100 (the cron script needs ~1 min a pass at N = 200)",
    )
    p.add_argument(
        "--plot-only", action="store_true", help="redraw the PNG from the last results, run nothing"
    )
    a = p.parse_args(argv)
    png = (results_dir(True) if a.quick else ROOT / "docs") / "benchmarks-quiet-pass.png"
    if a.plot_only:
        _plot(json.loads((results_dir(a.quick) / "quiet_pass.json").read_text()), png)
        return 0
    sizes = [1, 3] if a.quick else sorted(int(x) for x in a.sizes.split(","))
    reps = a.reps or (1 if a.quick else 5)
    py = None if a.no_ouroboros else ouroboros_python()
    tools = [t for t in TOOLS if t != "ouroboros" or py is not None]
    started = time.monotonic()
    with World("quiet", shared_registry=a.shared_registry, keep=a.keep, fake_nagle=a.fake_nagle) as w:
        n_max = max(sizes)
        repos = [f"r{i:03d}" for i in range(math.ceil(n_max / a.per_repo))]
        log(f"pushing {len(repos)} images")
        for r in repos:
            w.push(r, f"{r}-v1")
        created: list[str] = []
        out: dict[str, Any] = {"sizes": {}, "reps": reps, "per_repo": a.per_repo, "tools": tools,
                               "facts": w.facts, "failures": []}  # fmt: skip
        if py is not None:
            out["ouroboros"] = ouroboros_versions(py)
        for n in sizes:
            want = [(f"q{i:03d}", repos[i // a.per_repo]) for i in range(len(created), n)]
            log(f"N={n}: starting {len(want)} more containers")
            created += w.run_many(want)
            names = created[:n]
            m = math.ceil(n / a.per_repo)
            cfg = w.agent_config(f"quiet-{n}.toml", [
                {"container": c, "image": w.ref(repos[i // a.per_repo]), "min_uptime": "1s"} for i, c in enumerate(names)
            ])  # fmt: skip
            commands = {
                "cr-agent": (
                    agent_cmd("once", "--log-json", "-c", str(cfg)),
                    w.agent_env(),
                    agent_pass_seconds,
                ),
                "cron-script": (["sh", str(CRON_SCRIPT), *names], w.cron_env(), None),
            }
            if py is not None:
                commands["ouroboros"] = (
                    ouroboros_cmd(py, "--run-once", "--skip-startup-notifications", "-m", *names),
                    w.ouroboros_env(), ouroboros_pass_seconds,
                )  # fmt: skip
            ids_before = _ids(w, names)
            samples: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
            ratios: dict[str, list[dict[str, float]]] = {t: [] for t in tools if t != "cr-agent"}
            n_reps = reps if (a.reps or n < 100) else min(reps, a.reps_large)
            for t in tools:  # warm-up, not counted: the first pass after start-up creates state, fills caches
                if n < 100 or t == "cr-agent":
                    _measure(w, t, *commands[t], n, out["failures"])
            for rep in range(n_reps):
                order = (
                    tools[rep % len(tools) :] + tools[: rep % len(tools)]
                )  # rotate: no tool always goes first
                got = {t: _measure(w, t, *commands[t], n, out["failures"]) for t in order}
                for t in tools:
                    if got[t] is not None:
                        samples[t].append(got[t])
                for peer in ratios:  # ratios within one repetition: peer / cr-agent
                    if got.get("cr-agent") and got.get(peer):
                        ratios[peer].append({k: got[peer][k] / got["cr-agent"][k] for k in ("wall", "cpu", "pass")
                                             if got[peer].get(k) and got["cr-agent"].get(k)})  # fmt: skip
                log(f"N={n} rep {rep + 1}/{n_reps}: " + ", ".join(
                    f"{t} {got[t]['wall']:.2f}s" for t in tools if got[t]))  # fmt: skip
            if _ids(w, names) != ids_before:
                raise SystemExit(
                    f"N={n}: a container was recreated during the quiet passes: the measurement is void"
                )
            out["sizes"][str(n)] = {
                "n": n, "m": m, "reps": n_reps, "host_running_containers": len(w.api.containers()),
                "tools": {t: {k: stats(s.get(k) for s in samples[t]) for k in METRICS} for t in tools},
                "ratio_over_agent": {peer: {k: stats(r.get(k) for r in rs) for k in ("wall", "cpu", "pass")}
                                     for peer, rs in ratios.items()},
                "registry_by_kind": {t: samples[t][-1]["by_kind"] if samples[t] else {} for t in tools},
            }  # fmt: skip
    out["seconds"] = round(time.monotonic() - started, 1)
    write_result("quiet_pass", a.quick, out)
    _plot(out, png)
    agent_fail = [f for f in out["failures"] if f["tool"] == "cr-agent"]
    missing = [s["n"] for s in out["sizes"].values() if not s["tools"]["cr-agent"]["wall"]["n"]]
    return 1 if agent_fail or missing else 0


def _ids(w: World, names: list[str]) -> dict[str, str]:
    return {n: w.api.inspect_container(n)["Id"] for n in names}


def _measure(w: World, tool: str, cmd: list[str], env: dict[str, str], pass_of: Any, n: int,
             failures: list[dict[str, Any]]) -> dict[str, Any] | None:  # fmt: skip
    """One quiet pass of `tool`, validated: a pass that did not look at all N containers is retried.

    Ouroboros can exit 0 after an aborted pass: its job raises inside APScheduler, which logs the
    traceback and carries on. So a sample counts only if the engine saw N pulls (the peers) or the
    agent reported N containers up to date, and no traceback was printed.
    """
    for attempt in range(3):
        w.fake_reset()
        offset = w.registry_log.mark()
        watch = w.watch_pulls()
        cpu0 = w.engine_cpu()
        proc = run_measured(cmd, env_vars=env, cwd=w.dir)
        engine = w.engine_cpu() - cpu0
        pulls = len(watch.stop())
        reqs = summarize_requests(w.registry_log.since(offset))
        if tool == "cr-agent":
            done = agent_events(proc.stderr, "pass.done")
            why = (
                None
                if done and done[-1]["up_to_date"] == n
                else f"not all {n} containers reported up to date"
            )
        else:
            why = None if pulls == n else f"{pulls} pulls instead of {n}"
        if proc.rc != 0:
            why = f"exit code {proc.rc}"
        elif "Traceback" in proc.stderr or "raised an exception" in proc.stderr:
            why = (why + "; " if why else "") + "a traceback in its output"
        if why is None:
            return {
                "wall": proc.wall, "cpu": proc.cpu, "pass": pass_of(proc.stderr) if pass_of else None,
                "acr_requests": w.fake_stats()["total"], "registry_requests": reqs["requests"],
                "registry_bytes": reqs["bytes"], "by_kind": reqs["by_kind"], "pulls": pulls, "engine_cpu": engine,
            }  # fmt: skip
        tail = (
            proc.stderr[proc.stderr.find("Traceback") :][-1500:]
            if "Traceback" in proc.stderr
            else proc.stderr[-1500:]
        )
        failures.append({"tool": tool, "n": n, "rc": proc.rc, "attempt": attempt + 1, "why": why,
                         "wall": round(proc.wall, 2), "stderr": tail})  # fmt: skip
        log(f"{tool} N={n}: pass void ({why}), attempt {attempt + 1}: {tail[-300:]}")
    return None


def _plot(out: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing (pip install -e '.[bench]'): no plot")
        return
    sizes = sorted(out["sizes"].values(), key=lambda s: s["n"])
    ns = [s["n"] for s in sizes]
    from matplotlib.ticker import NullFormatter

    style = {
        "cr-agent": ("#1b7837", "o", "-"),
        "ouroboros": ("#c51b7d", "s", "--"),
        "cron-script": ("#4d4d4d", "^", ":"),
    }
    panels = [("wall", "wall time of the process (s)"), ("cpu", "CPU time of the process (s)"),
              ("registry_requests", "registry requests per pass"), ("acr_requests", "ACR API requests per pass")]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(17, 4.4))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for t in out["tools"]:
            med = [s["tools"][t][key]["median"] for s in sizes]
            lo = [s["tools"][t][key]["min"] for s in sizes]
            hi = [s["tools"][t][key]["max"] for s in sizes]
            if all(v is None for v in med):
                continue
            med = [v or 0 for v in med]
            err = [
                [m - (x or 0) for m, x in zip(med, lo, strict=True)],
                [(x or 0) - m for m, x in zip(med, hi, strict=True)],
            ]
            color, marker, ls = style.get(t, ("#333", "o", "-"))
            ax.errorbar(ns, med, yerr=err, marker=marker, ls=ls, capsize=3, label=t, color=color, ms=5)
        if key == "acr_requests":
            ax.plot(ns, [s["m"] for s in sizes], ls=":", color="#999", label="M (repositories)")
        ax.set_xscale("log")
        if key in ("wall", "cpu"):
            ax.set_yscale("log")
        elif key == "registry_requests":
            ax.set_yscale("symlog", linthresh=1)
            ax.set_ylim(bottom=0)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("N watched containers")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[-1].legend(fontsize=8)
    f = out["facts"]
    fig.suptitle("Quiet pass (nothing changed): median of the repetitions, bars min–max; "
                 f"{f['cores']} cores, {f['memory_gib']} GiB, Docker {f['docker']}", fontsize=11)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    log(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
