"""Scenario 5: a burst. N containers (one repository each) all get a new image before the same pass.

One `agent once` deploys them all, with `[agent] parallel_pulls = 4` and with `parallel_pulls = 1`,
the two alternating, with min_uptime = "0s" (the health gate is "still running", checked once).
Every new image carries its own layer of incompressible text (--payload-kib), pushed and then
deleted locally (as if CI built it), so each pull downloads it. Reported: the whole process, the
pull phase (start to the first `plan.update` event, "replacing": every pull ends before any container
is touched), the replace phase (from there to `pass.done`), and the bytes the registry sent.

    python -m bench.burst [--containers 50] [--payload-kib 1024] [--reps 3] [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from bench import common
from bench.common import World, log
from tests.support.world import parallel


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--containers", type=int, default=50)
    p.add_argument("--payload-kib", type=int, default=1024)
    p.add_argument("--parallel", type=int, default=4, help="parallel_pulls of the bounded variant")
    a = p.parse_args(argv)
    n = 4 if a.quick else a.containers
    reps = a.reps or (1 if a.quick else 3)
    payload = (64 if a.quick else a.payload_kib) * 1024
    modes = [a.parallel, 1]
    started = time.monotonic()
    out: dict[str, Any] = {
        "containers": n,
        "reps": reps,
        "payload_bytes": payload,
        "modes": {},
        "failures": [],
    }
    with World("burst", shared_registry=a.shared_registry, keep=a.keep, fake_nagle=a.fake_nagle) as w:
        out["facts"] = w.facts
        repos = [f"b{i:03d}" for i in range(n)]
        log(f"burst: {n} repositories and containers")
        parallel(lambda r: w.push(r, f"{r}-v0"), repos, 4)
        names = w.run_many([(f"b{i:03d}", r) for i, r in enumerate(repos)])
        cfgs = {m: w.agent_config(f"burst-{m}.toml", [
            {"container": c, "image": w.ref(r), "min_uptime": "0s"} for c, r in zip(names, repos, strict=True)
        ], parallel_pulls=m, state="state") for m in modes}  # fmt: skip
        env = w.agent_env()
        samples: dict[int, list[dict[str, Any]]] = {m: [] for m in modes}
        ratios: list[float] = []
        version = 0
        for rep in range(reps):
            got: dict[int, dict[str, Any]] = {}
            order = modes if rep % 2 == 0 else modes[::-1]
            for m in order:
                version += 1
                t = time.monotonic()
                parallel(
                    lambda r, v=version: w.push(
                        r, f"{r}-v{v}", payload=payload, keep_local=False, drop_now=False
                    ),
                    repos,
                    4,
                )
                w.drop_local()
                log(
                    f"rep {rep + 1}: {n} new images pushed in {time.monotonic() - t:.0f}s; parallel_pulls = {m}"
                )
                got[m] = _once(w, cfgs[m], env, n, out["failures"])
                samples[m].append(got[m])
                log(
                    f"  parallel_pulls = {m}: {got[m]['wall']:.1f}s (pulls {got[m].get('pull_phase', 0):.1f}s)"
                )
            if all(got[m].get("pull_phase") for m in modes):
                ratios.append(got[1]["pull_phase"] / got[a.parallel]["pull_phase"])
        for m in modes:
            out["modes"][str(m)] = {k: common.stats(s.get(k) for s in samples[m])
                                    for k in ("wall", "cpu", "pull_phase", "replace_phase", "registry_bytes",
                                              "registry_requests", "updated")}  # fmt: skip
        out["pull_phase_ratio_serial_over_parallel"] = common.stats(ratios)
    out["seconds"] = round(time.monotonic() - started, 1)
    common.write_result("burst", a.quick, out)
    return 1 if out["failures"] else 0


def _once(w: World, cfg: Any, env: dict[str, str], n: int, failures: list[dict[str, Any]]) -> dict[str, Any]:
    offset = w.registry_log.mark()
    t0 = time.time()
    proc = common.run_measured(
        common.agent_cmd("once", "--log-json", "-c", str(cfg), "--json"),
        env_vars=env,
        cwd=w.dir,
        timeout=1800,
    )
    reqs = common.summarize_requests(w.registry_log.since(offset))
    try:
        report = json.loads(proc.stdout)
        updated = sum(r["status"] == "updated" for r in report["results"])
    except (ValueError, KeyError):
        updated = 0
    if proc.rc != 0 or updated != n:
        failures.append({"rc": proc.rc, "updated": updated, "stderr": proc.stderr[-2000:]})
        log(f"agent once exited {proc.rc}, {updated}/{n} updated: {proc.stderr[-600:]}")
    first_replace = next((e["ts"] for e in common.agent_events(proc.stderr, "plan.update")), None)
    done = next((e["ts"] for e in common.agent_events(proc.stderr, "pass.done")), None)
    row: dict[str, Any] = {"wall": proc.wall, "cpu": proc.cpu, "updated": updated,
                           "registry_bytes": reqs["bytes"], "registry_requests": reqs["requests"]}  # fmt: skip
    if first_replace:
        row["pull_phase"] = first_replace - t0
        if done:
            row["replace_phase"] = done - first_replace
    return row


if __name__ == "__main__":
    sys.exit(main())
