"""What the benchmarks add to the tests' world (tests/support/world.py): measurements and the peers.

`World` here is that world with a private `docker-registry` by default (its access log counts only our
requests; `--shared-registry` uses the dev-env one, counting only our namespace), the fake ACR with
TCP_NODELAY (bench/peers/fake_acr.py; `--fake-nagle`: the stock one), its run directory under
bench/work/runs, the machine's facts, the engine's CPU time and pulls, and the peers' environments.
Everything it creates carries the prefix `crb-<random>-`, and clean-up removes only that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from tests.support import env, world
from tests.support.events import AGENT_EVENTS as AGENT_EVENTS
from tests.support.events import agent_events

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
OUROBOROS_VERSION = "1.4.2"
OUROBOROS_VENV = WORK / "ouroboros-venv"
CLK_TCK = os.sysconf("SC_CLK_TCK")


PYCACHE = WORK / "pycache"


def py_env(e: dict[str, str]) -> dict[str, str]:
    """Python tools run with their bytecode cached, as after a `pip install` (which compiles it).

    An editable install under PYTHONDONTWRITEBYTECODE=1 (this machine's default) would otherwise
    recompile the agent's own modules on every start; the cache lives in bench/work/pycache.
    """
    e = dict(e)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return e


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- options and results ------------------------------------------------------------------------
def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, one repetition")
    p.add_argument("--reps", type=int, help="repetitions per figure (default 5, quick 1)")
    p.add_argument("--shared-registry", action="store_true",
                   help=f"use the dev-env registry {env.REGISTRY} instead of a private one")  # fmt: skip
    p.add_argument("--no-ouroboros", action="store_true", help="skip the Ouroboros peer")
    p.add_argument("--fake-nagle", action="store_true",
                   help="run the stock fake ACR, whose every answer waits ~40 ms for a delayed ACK (see bench/peers/fake_acr.py)")  # fmt: skip
    p.add_argument(
        "--keep", action="store_true", help="leave the run directory (not the containers) for a post-mortem"
    )
    return p


def results_dir(quick: bool) -> Path:
    d = WORK / ("quick" if quick else "results")
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_result(name: str, quick: bool, data: dict[str, Any]) -> Path:
    path = results_dir(quick) / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    log(f"wrote {path.relative_to(ROOT)}")
    return path


def stats(values: Iterable[float]) -> dict[str, Any]:
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs), "max": max(xs),
            "values": [round(x, 6) for x in xs]}  # fmt: skip


# ---- the machine ---------------------------------------------------------------------------------
def machine_facts(client: docker.DockerClient) -> dict[str, Any]:
    info, version = client.info(), client.version()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = int(next((ln.split()[1] for ln in meminfo if ln.startswith("MemTotal")), "0"))
    reg = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True).stdout.strip()
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "agent"], cwd=ROOT, capture_output=True, text=True
    )
    return {
        "cores": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(), "docker": version.get("Version"), "docker_api": version.get("ApiVersion"),
        "storage_driver": info.get("Driver"), "python": platform.python_version(),
        "registry": reg.split()[-1] if reg else "?", "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "running_containers_on_host": info.get("ContainersRunning"), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git.stdout.strip(), "agent_uncommitted": [ln[3:] for ln in dirty.stdout.splitlines()],
    }  # fmt: skip


def dockerd_pid() -> int | None:
    for path in ("/var/run/docker.pid", "/run/docker.pid"):
        with contextlib.suppress(OSError, ValueError):
            return int(Path(path).read_text().strip())
    return None


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a running process, from /proc (0 if it is gone)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---- measuring a process -------------------------------------------------------------------------
@dataclass
class Proc:
    rc: int
    wall: float
    user: float
    sys: float
    stdout: str
    stderr: str
    maxrss_kib: int = 0  # the peak resident set of the process (and the children it waited for)

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def run_measured(cmd: Sequence[str], *, env_vars: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 900) -> Proc:  # fmt: skip
    """Run `cmd`; wall time, and CPU time of the process and every child it waited for (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            list(cmd), stdout=out, stderr=err, env=env_vars, cwd=cwd, stdin=subprocess.DEVNULL
        )
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(p.returncode, wall, ru.ru_utime, ru.ru_stime,
                    out.read().decode(errors="replace"), err.read().decode(errors="replace"), ru.ru_maxrss)  # fmt: skip


# ---- the registry's access log -------------------------------------------------------------------
_ACCESS = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"')


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    status: int
    bytes: int
    agent: str


class RegistryLog:
    """Reads the combined-format access lines a registry wrote after a mark."""

    def __init__(self, path: Path, namespace: str | None) -> None:
        self.path = path
        self.namespace = namespace  # in the shared registry: count only our repositories

    def mark(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def since(self, offset: int, settle: float = 0.05) -> list[Request]:
        time.sleep(settle)  # the registry writes the line as the response completes
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            data = fh.read().decode(errors="replace")
        out = []
        for line in data.splitlines():
            m = _ACCESS.match(line)
            if not m:
                continue
            method, uri, status, size, agent = m.groups()
            if agent.startswith("Python-urllib"):
                continue  # the fake ACR reading the registry: ACR's side, not the client's
            if self.namespace and f"/{self.namespace}/" not in uri:
                continue
            out.append(Request(method, uri, int(status), 0 if size == "-" else int(size), agent))
        return out


def summarize_requests(reqs: list[Request]) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for r in reqs:
        path = r.uri.split("?", 1)[0]
        kind = ("ping" if path.rstrip("/") == "/v2" else "manifest" if "/manifests/" in path
                else "blob" if "/blobs/" in path else "other")  # fmt: skip
        key = f"{r.method} {kind}"
        kinds[key] = kinds.get(key, 0) + 1
    return {"requests": len(reqs), "bytes": sum(r.bytes for r in reqs), "by_kind": kinds}


# ---- the world -----------------------------------------------------------------------------------
class World(world.World):
    """tests/support/world.py's World with what the benchmarks add: a private registry by default, the
    fake ACR with TCP_NODELAY, the run directory under bench/work/runs, machine facts, the engine's CPU
    time, its pulls, and the peers' environments."""

    def __init__(self, name: str, *, shared_registry: bool = False, keep: bool = False,
                 fake_nagle: bool = False) -> None:  # fmt: skip
        # bench/peers/fake_acr.py is tests/support/fake_acr.py with TCP_NODELAY (see there); --fake-nagle: the stock one.
        super().__init__(name, private_registry=not shared_registry, keep=keep, workdir=WORK / "runs",
                         fake_module="tests.support.fake_acr" if fake_nagle else "bench.peers.fake_acr", signals=True)  # fmt: skip
        self.fake_nagle = fake_nagle

    def __enter__(self) -> World:
        super().__enter__()
        # in the shared registry, count only our repositories
        self.registry_log = RegistryLog(self.registry_log_path, None if self.private_registry else self.ns)
        self.dockerd = dockerd_pid()
        self.facts = machine_facts(self.client)
        self.facts["fake_acr"] = (
            "tests.support.fake_acr (stock)" if self.fake_nagle else "tests.support.fake_acr with TCP_NODELAY"
        )
        log(f"{self.name}: prefix {self.prefix}, registry {self.registry}, fake ACR {self.fake_url}")
        return self

    def agent_env(self, **extra: str) -> dict[str, str]:
        return py_env(super().agent_env(**extra))

    def ouroboros_env(self) -> dict[str, str]:
        e = py_env(
            {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REPO_", "LOG_LEVEL"))}
        )
        # Its documented private-registry options (REPO_USER / REPO_PASS); an empty DOCKER_CONFIG
        # so it cannot fall back to anyone else's stored login.
        e.update({"REPO_USER": env.REGISTRY_USER, "REPO_PASS": env.REGISTRY_PASSWORD,
                  "DOCKER_CONFIG": str(self.docker_config("ouroboros", False))})  # fmt: skip
        return e

    def cron_env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        e["DOCKER_CONFIG"] = str(self.docker_config("cron", True))
        return e

    # -- what a pass cost the engine -------------------------------------------------------------------
    def watch_pulls(self) -> PullWatch:
        """Count the engine's image pulls for our namespace from now until .stop() (a live event stream)."""
        return PullWatch(self.api, self.ns)

    def engine_cpu(self) -> float:
        return cpu_seconds(self.dockerd) + cpu_seconds(self.registry_pid)


class PullWatch:
    """A live `docker events` subscription (type image, event pull), read by a thread until stop()."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.namespace = namespace
        self.refs: list[str] = []
        self._stream = api.events(filters={"type": "image", "event": "pull"}, decode=True)
        self._thread = threading.Thread(target=self._read, name="pull-watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when stop() closes it
            for ev in self._stream:
                ref = ev.get("id") or ev.get("Actor", {}).get("ID") or ""
                if f"/{self.namespace}/" in ref:
                    self.refs.append(ref)

    def stop(self, settle: float = 0.2) -> list[str]:
        time.sleep(settle)  # events of the last pull are sent as it completes
        self._stream.close()
        self._thread.join(5)
        return list(self.refs)


# ---- the peers -----------------------------------------------------------------------------------
def agent_cmd(*args: str) -> list[str]:
    """`agent ...` as installed in the venv running the benchmarks (the console script users run)."""
    exe = Path(sys.executable).parent / "agent"
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "agent", *args]


def wait_agent_event(
    proc: subprocess.Popen[Any], log_file: Path, name: str, timeout: float
) -> dict[str, Any]:
    """The first `name` event in the log file of a running `agent ... --log-json`; fails if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_file.read_text(errors="replace")
        found = agent_events(text, name)
        if found:
            return found[0]
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"agent: no {name!r} event in {log_file} (exit code {proc.poll()}):\n{text[-3000:]}"
            )
        time.sleep(0.05)


def agent_pass_seconds(stderr: str) -> float | None:
    """The pass's own duration, from the `pass.done` event of an `agent ... --log-json` run."""
    done = agent_events(stderr, "pass.done")
    return float(done[-1]["seconds"]) if done else None


def ouroboros_python(install: bool = True) -> Path | None:
    """The Python of a separate venv with ouroboros-cli==1.4.2 (installed from PyPI on first use)."""
    py = OUROBOROS_VENV / "bin" / "python"
    if (OUROBOROS_VENV / "bin" / "ouroboros").exists():
        return py
    if not install:
        return None
    log(f"installing ouroboros-cli=={OUROBOROS_VERSION} into {OUROBOROS_VENV.relative_to(ROOT)}")
    t0 = time.monotonic()
    shutil.rmtree(OUROBOROS_VENV, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(OUROBOROS_VENV)], check=True, capture_output=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"ouroboros-cli=={OUROBOROS_VERSION}"], check=True, capture_output=True, timeout=600)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        out = getattr(e, "stderr", b"") or b""
        log(f"could not install ouroboros-cli: {e}: {out.decode(errors='replace')[-500:]}")
        shutil.rmtree(OUROBOROS_VENV, ignore_errors=True)
        return None
    log(f"ouroboros-cli installed in {time.monotonic() - t0:.0f}s")
    return py


def ouroboros_versions(py: Path) -> dict[str, str]:
    out = subprocess.run([str(py), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                         capture_output=True, text=True).stdout  # fmt: skip
    wanted = {"ouroboros-cli", "apprise", "docker", "apscheduler", "requests"}
    try:
        return {p["name"]: p["version"] for p in json.loads(out) if p["name"].lower() in wanted}
    except ValueError:
        return {}


def ouroboros_cmd(py: Path, *args: str) -> list[str]:
    """Ouroboros's own CLI main(), through a wrapper that only times its update pass (bench/peers/)."""
    return [str(py), str(ROOT / "bench" / "peers" / "ouroboros_timed.py"), *args]


_OURO_PASS = re.compile(r"^BENCH ouroboros update ([\d.]+)s$", re.M)


def ouroboros_pass_seconds(stderr: str) -> float | None:
    found = _OURO_PASS.findall(stderr)
    return float(found[-1]) if found else None


CRON_SCRIPT = ROOT / "bench" / "cron-update.sh"
