"""Downtime during an update: failed requests and the longest gap without an answer, per update method.

A busybox httpd container serving its image's marker is updated from v1 to v2 while request loops
(bounded in count and in time) run throughout. Methods:

* cr-agent stop-first, the container publishing a loopback port; the loop runs on the host against
  127.0.0.1:<port>;
* cr-agent start-first, the container with no host port, on a user-defined network under the alias
  `web`. What a real user has in front of such a service is a reverse proxy container that resolves
  the service's DNS name; here a busybox httpd CGI proxy resolves the name on every request through
  Docker's DNS (as nginx does with `resolver 127.0.0.11` and a variable in proxy_pass), takes the first
  address, gives up after 2 s and answers 502 naming the address it tried. The host loop asks it for the
  alias `web` (as compose users address a service) and, more slowly, for the container's name (as
  `docker run --name` users do). A third loop runs inside a client container on the same network, as
  tests/integration/test_safety.py does, stamping each step with /proc/uptime;
* Ouroboros 1.4.2, `ouroboros --run-once --monitor <container>` (pull, stop, remove, create, start);
* the blog's webhook receiver, bench/blog_receiver.sh (`docker rm -f`, `docker pull`, `docker run`).

Full mode adds cr-agent stop-first behind the same proxy.

`--handover N` (issue 9 item 11) runs only cr-agent start-first, N updates one after the other, with the
clients that never retry (the proxy and the in-network client), and writes its own block of the page.

Each round also measures the container's own start time (`docker start` → first answer) and stop time,
when a starting container's alias appears in Docker's DNS against when it first answers, and, for cr-agent,
the time from "replacing A → B" (the new digest seen and pulled) to the new container passing the health
gate (min_uptime "1s"), from the agent's DEBUG log.

    .venv/bin/python -m bench.downtime --quick   # 1 run per method, ~1 min, writes bench/work/quick/
    .venv/bin/python -m bench.downtime           # 5 runs per method, ~7 min, writes docs/benchmarks-downtime.md
    .venv/bin/python -m bench.downtime --from-json bench/work/results/downtime.json   # only rewrite the page

The page keeps its hand-written findings (between <!-- analysis:begin --> and <!-- analysis:end -->).

Modules: `run.py` brings up the world and measures (`python -m bench.downtime` runs its `main`),
`analyse.py` turns the samples and the agent's log into numbers, `render.py` writes the page.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "bench" / "work"
DOC = ROOT / "docs" / "benchmarks-downtime.md"


def log(msg: str) -> None:
    print(f"[downtime {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
