"""What every benchmark needs: the services, a private namespace, images, containers, measurements, clean-up.

A `World` brings up what a scenario needs and takes it down again:

* dockerd (through scripts/dev-env.sh, which also installs the registry and busybox when missing);
* a private `docker-registry` on a free loopback port with the tests' htpasswd login, its access log
  in the run directory (so nobody else's test traffic lands in our counts); `--shared-registry` uses
  the dev-env registry on 127.0.0.1:5000 and its log instead, counting only our namespace;
* the fake ACR API as a process (`python -m tests.fake_acr --port P --registry R`), whose tag table
  we set right after each push (ACR's view of the registry), so it never reads the registry itself
  during a measured pass.

Everything it creates carries the prefix `crb-<random>-` (containers, the registry namespace, and so
every image), and clean-up removes only that.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from tests.support import env, images

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
DEV_ENV = ROOT / "scripts" / "dev-env.sh"
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]  # stops at once on SIGTERM
# busybox httpd as PID 1 ignores SIGTERM, so `docker stop` would wait its 10 s grace period.
HTTPD = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
KEY_ID, KEY_SECRET = "test-key-id", "test-key-secret"  # tests/fake_acr.py DEFAULT_KEYS
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


def ensure_engine() -> None:
    """dockerd and the dev-env registry (scripts/dev-env.sh is idempotent)."""
    done = subprocess.run(["bash", str(DEV_ENV)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/dev-env.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


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


def free_port() -> int:
    return images.free_port()


def wait_port(port: int, timeout: float, what: str, alive: Callable[[], bool] = lambda: True) -> None:
    """Until something listens on 127.0.0.1:`port`; give up at the deadline or when `alive()` turns false."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            if not alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s") from None
            time.sleep(0.05)


# ---- measuring a process -------------------------------------------------------------------------
@dataclass
class Proc:
    rc: int
    wall: float
    user: float
    sys: float
    stdout: str
    stderr: str

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
                    out.read().decode(errors="replace"), err.read().decode(errors="replace"))  # fmt: skip


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
_WORLDS: list[World] = []


def _cleanup_all(*_: Any) -> None:
    for w in list(_WORLDS):
        w.close()


def _on_signal(signum: int, _frame: Any) -> None:
    _cleanup_all()
    sys.exit(128 + signum)


@dataclass
class World:
    name: str
    shared_registry: bool = False
    keep: bool = False
    fake_nagle: bool = False
    prefix: str = field(default_factory=lambda: f"crb-{secrets.token_hex(3)}-")
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _to_drop: list[tuple[str, str | None, str, str]] = field(default_factory=list)
    _drop_lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    # -- bring-up and tear-down ----------------------------------------------------------------------
    def __enter__(self) -> World:
        self.dir = WORK / "runs" / (self.prefix + self.name)
        self.dir.mkdir(parents=True)
        _WORLDS.append(self)
        atexit.register(self.close)
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        ensure_engine()
        self.client = docker.from_env(timeout=600)
        self.api = self.client.api
        if self.shared_registry:
            self.registry = env.REGISTRY
            self.registry_log = RegistryLog(Path(env.REGISTRY_LOG), self.ns)
            self.registry_pid: int | None = None
        else:
            self._start_registry()
        self._start_fake()
        self.dockerd = dockerd_pid()
        self.facts = machine_facts(self.client)
        self.facts["fake_acr"] = (
            "tests.fake_acr (stock)" if self.fake_nagle else "tests.fake_acr with TCP_NODELAY"
        )
        log(f"{self.name}: prefix {self.prefix}, registry {self.registry}, fake ACR {self.fake_url}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ns(self) -> str:
        return self.prefix + "ns"

    def _start_registry(self) -> None:
        port = free_port()
        d = self.dir / "registry"
        (d / "data").mkdir(parents=True)
        subprocess.run(["htpasswd", "-Bbc", str(d / "htpasswd"), env.REGISTRY_USER, env.REGISTRY_PASSWORD],
                       check=True, capture_output=True)  # fmt: skip
        # The same configuration as scripts/dev-env.sh, on another port and directory.
        (d / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {d / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
            f"auth:\n  htpasswd:\n    realm: cr-agent-bench\n    path: {d / 'htpasswd'}\n"
        )
        logf = open(d / "registry.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(["docker-registry", "serve", str(d / "config.yml")], stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        logf.close()
        self._procs.append(proc)
        wait_port(port, 30, "docker-registry")
        self.registry = f"127.0.0.1:{port}"
        self.registry_log = RegistryLog(d / "registry.log", None)
        self.registry_pid = proc.pid

    def _start_fake(self) -> None:
        port = free_port()
        logf = open(self.dir / "fake-acr.log", "ab")  # noqa: SIM115
        # bench/peers/fake_acr.py is tests/fake_acr.py with TCP_NODELAY (see there); --fake-nagle: the stock one.
        module = "tests.fake_acr" if self.fake_nagle else "bench.peers.fake_acr"
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), "--registry", self.registry],
            cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        logf.close()
        self._procs.append(proc)
        wait_port(port, 30, "fake ACR")
        self.fake_url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        if self._closed or not hasattr(self, "dir"):
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.purge()
        time.sleep(0.5)  # a thread that was creating a container when we were stopped may just have finished
        with contextlib.suppress(Exception):
            self.purge()
        stop_processes(reversed(self._procs), grace=10)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _WORLDS:
            _WORLDS.remove(self)

    def purge(self) -> None:
        """Remove our containers, then every image whose every reference is in our namespace."""
        deadline = time.monotonic() + 60
        while True:
            names = [c["Id"] for c in self.api.containers(all=True, filters={"name": self.prefix})
                     if any(n.lstrip("/").startswith(self.prefix) for n in c["Names"])]  # fmt: skip
            if not names or time.monotonic() > deadline:
                break
            parallel(lambda cid: self._quietly(self.api.remove_container, cid, force=True, v=True), names)
        mine = f"{self.registry}/{self.ns}/"
        for img in self.api.images(all=False):
            refs = (img.get("RepoTags") or []) + (img.get("RepoDigests") or [])
            refs = [r for r in refs if r != "<none>:<none>" and r != "<none>@<none>"]
            # Builds are cached, so another run's image can be this very image: drop only our references;
            # the image itself goes with the last of them, or stays for whoever else refers to it.
            for ref in refs:
                if ref.startswith(mine):
                    self._quietly(self.api.remove_image, ref)
            if refs and all(r.startswith(mine) for r in refs):
                self._quietly(self.api.remove_image, img["Id"])

    @staticmethod
    def _quietly(fn: Callable[..., Any], *a: Any, **kw: Any) -> None:
        with contextlib.suppress(docker.errors.APIError):
            fn(*a, **kw)

    # -- images ----------------------------------------------------------------------------------------
    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.registry}/{self.ns}/{repo}:{tag}"

    def push(self, repo: str, marker: str, *, tag: str = "latest", http: bool = False, payload: int = 0,
             publish: bool = True, keep_local: bool = True, drop_now: bool = True) -> str:  # fmt: skip
        """Build a busybox image FROM scratch, push it, and (publish) tell the fake ACR; return the digest.

        `payload`: bytes of incompressible text in a layer of its own. `keep_local=False` deletes the
        local image after the push, as if it had been built elsewhere (CI): a later pull then has to
        download its new layers, while the busybox layers the running container shares stay, and the
        local tag points at the running image again. With `drop_now=False` that happens at the next
        `drop_local()`: deleting images while other threads build can pull a cached layer from under them.
        """
        ref = self.ref(repo, tag)
        files = {"/payload": _random_text(payload)} if payload else None
        old_id = None
        if not keep_local:
            with contextlib.suppress(docker.errors.NotFound):
                old_id = self.api.inspect_image(ref)["Id"]
        for attempt in range(5):
            try:
                if http:
                    image_id = images.build_http_image(
                        ref, marker, files=files, cmd=HTTPD, docker_client=self.client
                    )
                else:
                    image_id = images.build_image(
                        ref, marker=marker, cmd=SLEEPER, files=files, docker_client=self.client
                    )
                break
            except docker.errors.BuildError as e:
                # "unable to find image": someone else on this engine deleted a cached layer, or pruned our
                # image in the moment between the build's last step and its tag.
                if attempt == 4:
                    raise
                log(f"build of {ref} failed ({e}); again")
                time.sleep(0.5 * (attempt + 1))
        digest = images.push(ref, self.client)
        if not keep_local:
            with self._drop_lock:
                self._to_drop.append((image_id, old_id, ref, tag))
            if drop_now:
                self.drop_local()
        if publish:
            self.publish(repo, tag, digest)
        return digest

    def drop_local(self) -> None:
        """Delete the images pushed with keep_local=False; put the local tag back on the running image.

        The build moved the local tag to the new image; on a real host it stays on the running one
        (and Ouroboros ignores containers whose image has no tag).
        """
        with self._drop_lock:
            todo, self._to_drop = self._to_drop, []
        for image_id, old_id, ref, tag in todo:
            if old_id:
                self.api.tag(old_id, ref.rsplit(":", 1)[0], tag, force=True)
            self.api.remove_image(image_id)

    def publish(self, repo: str, tag: str, digest: str) -> None:
        self.tags.setdefault(repo, {})[tag] = digest
        self.fake_post("/_fake/tags", {"repo": f"{self.ns}/{repo}", "tags": self.tags[repo]})

    def fake_post(self, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.fake_url + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with _opener().open(req, timeout=10) as resp:
            return json.loads(resp.read())

    def fake_stats(self) -> dict[str, Any]:
        with _opener().open(self.fake_url + "/_fake/stats", timeout=10) as resp:
            return dict(json.loads(resp.read()))

    def fake_reset(self) -> None:
        self.fake_post("/_fake/stats/reset")

    # -- containers ------------------------------------------------------------------------------------
    def cname(self, name: str) -> str:
        return self.prefix + name

    def run(self, name: str, repo: str, *, ports: dict[int, int] | None = None, tag: str = "latest") -> str:
        """Create and start container `name` from `repo:tag` (as a user would: by tag); return its full name."""
        full = self.cname(name)
        if self._closed:
            raise RuntimeError("the world is closing")
        host_config = self.api.create_host_config(
            port_bindings={c: ("127.0.0.1", h) for c, h in (ports or {}).items()} or None
        )
        c = self.api.create_container(self.ref(repo, tag), name=full, host_config=host_config,
                                      ports=list(ports) if ports else None)  # fmt: skip
        self.api.start(c["Id"])
        return full

    def run_many(self, specs: list[tuple[str, str]], workers: int = 6) -> list[str]:
        return parallel(lambda s: self.run(s[0], s[1]), specs, workers)

    def running_image(self, name: str) -> str:
        return str(self.api.inspect_container(self.cname(name))["Image"])

    # -- the peers' environments -----------------------------------------------------------------------
    def agent_config(self, file: str, watches: list[dict[str, Any]], *, interval: str = "1h",
                     parallel_pulls: int = 4, extra: str = "", state: str = "state") -> Path:  # fmt: skip
        lines = ["[agent]", f'interval = "{interval}"', f'state_dir = "{self.dir / state}"',
                 f"parallel_pulls = {parallel_pulls}", "", "[aliyun]", 'region = "cn-hangzhou"',
                 f'endpoint = "{self.fake_url}"', 'timeout = "10s"', "retries = 1", "", extra]  # fmt: skip
        for w in watches:
            lines.append("[[watch]]")
            w = {"source": "aliyun", **w}
            for k, v in w.items():
                lines.append(f"{k} = {v if isinstance(v, str) and v.startswith('{') else json.dumps(v)}")
        path = self.dir / file
        path.write_text("\n".join(lines) + "\n")
        return path

    def agent_env(self, **extra: str) -> dict[str, str]:
        e = py_env(
            {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("ALIYUN_", "ALIBABA_CLOUD_", "DOCKER_"))
            }
        )
        cfg = self.dir / "docker-config-agent"  # empty: the agent's pull login comes from ACR's /tokens
        cfg.mkdir(exist_ok=True)
        e.update({"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
                  "DOCKER_CONFIG": str(cfg), **extra})  # fmt: skip
        return e

    def docker_config(self, who: str, with_login: bool) -> Path:
        """A DOCKER_CONFIG directory for one peer only; with_login: config.json as `docker login` writes it."""
        d = self.dir / f"docker-config-{who}"
        d.mkdir(exist_ok=True)
        if with_login:
            import base64

            token = base64.b64encode(f"{env.REGISTRY_USER}:{env.REGISTRY_PASSWORD}".encode()).decode()
            (d / "config.json").write_text(json.dumps({"auths": {self.registry: {"auth": token}}}))
        return d

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

    def pulls(self, since: float, until: float) -> list[str]:
        """Image pulls the engine did in [since, until] for our namespace (from `docker events`).

        Only for short windows: dockerd answers `since` queries from its last 256 events, and other
        people's container churn pushes older ones out. Long passes use watch_pulls().
        """
        out = []
        for ev in self.api.events(since=f"{since:.6f}", until=f"{until:.6f}",
                                  filters={"type": "image", "event": "pull"}, decode=True):  # fmt: skip
            ref = ev.get("id") or ev.get("Actor", {}).get("ID") or ""
            if f"/{self.ns}/" in ref:
                out.append(ref)
        return out

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


def _random_text(n: int) -> str:
    import base64

    return base64.b64encode(os.urandom(n * 3 // 4 + 3)).decode()[:n]  # gzip cannot shrink it much


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def parallel(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = 6) -> list[Any]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def stop_processes(procs: Iterable[subprocess.Popen[Any]], grace: float) -> None:
    """SIGTERM each process we started that still runs; SIGKILL it after `grace` seconds."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


# ---- the peers -----------------------------------------------------------------------------------
def agent_cmd(*args: str) -> list[str]:
    """`agent ...` as installed in the venv running the benchmarks (the console script users run)."""
    exe = Path(sys.executable).parent / "agent"
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "agent", *args]


# the `--log-json` events the benchmarks read (tests/unit/test_architecture.py checks the agent emits them)
AGENT_EVENTS = ("pass.start", "plan.update", "pass.result", "pass.done")


def agent_events(text: str, *names: str) -> list[dict[str, Any]]:
    """The agent's `--log-json` lines with an `event` field (all, or those named), `ts` in epoch seconds."""
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") and (not names or record["event"] in names):
            record["ts"] = datetime.datetime.fromisoformat(record["time"]).timestamp()
            out.append(record)
    return out


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
