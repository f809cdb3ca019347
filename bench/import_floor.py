"""The import floor under `agent once`: what the interpreter and the design card's packages cost by themselves.

`python -c pass`, then `import docker`, `import loguru`, `import aliyunsdkcore.client` (aliyun-python-sdk-cr's
core), the three together, and the whole `agent once` process for one up-to-date container, each run
`--reps` times (at least 10) in rotating order with the venv's Python, bytecode cached as after a `pip
install` (bench/common.py `py_env`). Wall and CPU time of each process (`wait4`); median (min–max).
The difference between the last two rows is what cr-agent adds on top of its packages: its own modules,
the config, one ACR request and two Docker API calls. `-X importtime` of `agent once` then lists the
heaviest modules the agent's code imports directly (candidates for lazy imports).

    python -m bench.import_floor [--reps 15] [--quick]
"""

from __future__ import annotations

import os
import sys
from typing import Any

from bench import common
from bench.common import World
from bench.footprint import importtime

ROWS = {
    "python -c pass": "pass",
    "import docker": "import docker",
    "import loguru": "import loguru",
    "import aliyunsdkcore.client": "import aliyunsdkcore.client",
    "all three": "import docker, loguru, aliyunsdkcore.client",
}
ONCE = "agent once (1 container)"


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    a = p.parse_args(argv)
    reps = max(10, a.reps or (10 if a.quick else 20))
    out: dict[str, Any] = {"reps": reps, "python": sys.executable}
    with World("import-floor", shared_registry=a.shared_registry, keep=a.keep, fake_nagle=a.fake_nagle) as w:
        out["facts"] = w.facts
        w.push("web", "v1")
        cfg = w.agent_config("agent.toml", [{"container": w.run("web", "web"), "image": w.ref("web")}])
        env, agent_env = common.py_env(dict(os.environ)), w.agent_env()
        cmds = {name: ([sys.executable, "-c", code], env) for name, code in ROWS.items()}
        cmds[ONCE] = (common.agent_cmd("once", "-c", str(cfg)), agent_env)
        for cmd, e in cmds.values():  # warm the page cache and the bytecode cache
            common.run_measured(cmd, env_vars=e, cwd=w.dir)
        runs: dict[str, list[common.Proc]] = {name: [] for name in cmds}
        names = list(cmds)
        for rep in range(reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                cmd, e = cmds[name]
                proc = common.run_measured(cmd, env_vars=e, cwd=w.dir)
                if proc.rc != 0:
                    raise SystemExit(f"{name} exited {proc.rc}:\n{proc.stderr[-2000:]}")
                runs[name].append(proc)
        out["rows"] = {n: {"wall": common.stats(p.wall for p in v), "cpu": common.stats(p.cpu for p in v),
                           "maxrss_kib": common.stats(p.maxrss_kib for p in v)}
                       for n, v in runs.items()}  # fmt: skip
        out["importtime"] = importtime(cfg, agent_env, w.dir, 3 if a.quick else 10)
    common.write_result("import_floor", a.quick, out)
    print("\n".join(table(out)))
    return 0


def table(r: dict[str, Any]) -> list[str]:
    """The rows as a Markdown table, then the heaviest direct imports of the agent's modules."""
    rows, pass_ms = r["rows"], r["rows"]["python -c pass"]["wall"]["median"] * 1000

    def ms(s: dict[str, Any]) -> str:
        return f"{s['median'] * 1000:.0f} ms ({s['min'] * 1000:.0f}–{s['max'] * 1000:.0f})"

    out = [
        "| process | wall, median (min–max) | CPU, median | wall above `python -c pass` | peak RSS, median |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in rows.items():
        above = s["wall"]["median"] * 1000 - pass_ms
        rss = s.get("maxrss_kib", {}).get("median")
        out.append(f"| `{name}` | {ms(s['wall'])} | {s['cpu']['median'] * 1000:.0f} ms | {above:+.0f} ms | "
                   + (f"{rss / 1024:.1f} MiB |" if rss else "– |"))  # fmt: skip
    floor, once = rows["all three"]["wall"]["median"], rows[ONCE]["wall"]["median"]
    out += ["", f"{r['reps']} runs each, rotating order. The three packages are {floor / once:.0%} of `agent once`'s "
            f"wall time; cr-agent's own code, config and one quiet pass add {(once - floor) * 1000:.0f} ms."]  # fmt: skip
    it = r.get("importtime")
    if it:
        out += ["", "Heaviest imports made directly by the agent's modules in `agent once` (`-X importtime`, "
                f"cumulative, median of {it['runs']}):", "", "| module | imported by | ms |", "|---|---|---:|"]  # fmt: skip
        for name, s in it["heaviest_direct"][:10]:
            out.append(f"| `{name}` | `{it['importers'].get(name, '?')}` | {s['median'] * 1000:.1f} |")
    return out


if __name__ == "__main__":
    sys.exit(main())
