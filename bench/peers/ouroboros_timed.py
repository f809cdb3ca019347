"""Run Ouroboros's own CLI (`pyouroboros.ouroboros.main`) unchanged, timing each update pass.

Run with the Python of the Ouroboros venv: `python bench/peers/ouroboros_timed.py -o -m name ...`.
The only addition: after each `Container.update()` it prints `BENCH ouroboros update <seconds>s`
to stderr, so a benchmark can tell the pass from the process start-up and the CLI's 1 s poll loop.
"""

import sys
import time

from pyouroboros import dockerclient, ouroboros

_update = dockerclient.Container.update


def timed_update(self):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    try:
        return _update(self)
    finally:
        print(f"BENCH ouroboros update {time.perf_counter() - t0:.4f}s", file=sys.stderr, flush=True)


dockerclient.Container.update = timed_update

if __name__ == "__main__":
    sys.argv = ["ouroboros", *sys.argv[1:]]
    ouroboros.main()
