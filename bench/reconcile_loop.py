"""In-process memory test: build the agent's objects once, then call reconcile(ctx) again and again.

    python -m bench.reconcile_loop -c agent.toml --passes 1000 --every 50

The same objects `agent run` builds (app.build_context); no scheduler, no webhook, so what is left
is the pass itself. Prints one JSON object: VmRSS (from /proc/self/status) every `every` passes, and
the pass times. Logs go to stderr at INFO, as the daemon's do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--passes", type=int, default=1000)
    p.add_argument("--every", type=int, default=50)
    a = p.parse_args()
    from agent import logs
    from agent.app import build_context
    from agent.config import load
    from agent.reconcile.run import reconcile

    logs.setup("INFO")
    cfg = load(Path(a.config))
    before = rss_kib()
    ctx = build_context(cfg)
    samples: list[tuple[int, int]] = [(0, rss_kib())]
    times: list[float] = []
    failed = 0
    for i in range(1, a.passes + 1):
        t0 = time.perf_counter()
        report = reconcile(ctx)
        times.append(time.perf_counter() - t0)
        failed += not report.ok
        if i == 1 or i % a.every == 0:
            samples.append((i, rss_kib()))
    print(json.dumps({
        "rss_after_imports_kib": before, "samples": samples, "failed_passes": failed,
        "pass_seconds": {"median": statistics.median(times), "min": min(times), "max": max(times)},
    }))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
