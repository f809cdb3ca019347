"""A world on the shared Docker Engine for integration tests and benchmarks: services, registry, fake ACR.

`services_up()` / `ensure_services()` check and start what scripts/dev-env.sh provides. A `World` brings
up, under one name prefix, a registry namespace (the dev-env registry, or a private `docker-registry` on
a free loopback port with the same login), the fake ACR API as a process whose tag table it sets after
each push, images, containers and agent configs; `close()` removes only what carries its prefix.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

from tests.support import acr_world, env, images
from tests.support.purge import purge

ROOT = Path(__file__).resolve().parents[2]
DEV_ENV = ROOT / "scripts" / "dev-env.sh"
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]  # stops at once on SIGTERM
# busybox httpd as PID 1 ignores SIGTERM, so `docker stop` would wait its 10 s grace period.
HTTPD = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
KEY_ID, KEY_SECRET = "test-key-id", "test-key-secret"  # tests/support/fake_acr.py DEFAULT_KEYS


# ---- the services ------------------------------------------------------------------------------------
def acr_world_up() -> bool:
    """The test CA and the /etc/hosts lines of scripts/dev-env.sh (tests/support/acr_world.py)."""
    try:
        resolved = socket.gethostbyname(acr_world.api_host(acr_world.REGIONS[0]))
    except OSError:
        return False
    return resolved == acr_world.API_IP and Path(acr_world.CA_FILE).is_file()


def services_up(acr_hosts: bool = True) -> bool:
    """dockerd answers, the dev-env registry listens (and, with acr_hosts, the ACR host names resolve)."""
    if acr_hosts and not acr_world_up():
        return False
    host, port = env.REGISTRY.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_services(acr_hosts: bool = True) -> None:
    """Run scripts/dev-env.sh (idempotent) when the services are down; raise when that does not bring them up."""
    if services_up(acr_hosts):
        return
    done = subprocess.run(["bash", str(DEV_ENV)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not services_up(acr_hosts):
        raise RuntimeError(f"scripts/dev-env.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


# ---- processes ---------------------------------------------------------------------------------------
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


def parallel(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = 6) -> list[Any]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def _random_text(n: int) -> str:
    return base64.b64encode(os.urandom(n * 3 // 4 + 3)).decode()[:n]  # gzip cannot shrink it much


def _log(msg: str) -> None:
    print(f"[world {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- the agent -------------------------------------------------------------------------------------
def agent_toml(endpoint: str, state_dir: Path, watches: list[dict[str, Any]], *, agent: str = 'interval = "1h"',
               extra: str = "", timeout: str = "10s") -> str:  # fmt: skip
    """An agent.toml: `agent` lines in [agent], the fake ACR at `endpoint`, `extra` sections, one [[watch]]
    per dict (source aliyun unless given; a string value starting with `{` is written as is: an inline table)."""
    lines = ["[agent]", f'state_dir = "{state_dir}"', agent, "", "[aliyun]", 'region = "cn-hangzhou"',
             f'endpoint = "{endpoint}"', f'timeout = "{timeout}"', "retries = 1", "", extra]  # fmt: skip
    for w in watches:
        lines.append("[[watch]]")
        for k, v in {"source": "aliyun", **w}.items():
            lines.append(f"{k} = {v if isinstance(v, str) and v.startswith('{') else json.dumps(v)}")
    return "\n".join(lines) + "\n"


def agent_environ(docker_config: Path, **extra: str) -> dict[str, str]:
    """This environment without anyone's ACR keys, with the fake ACR's; DOCKER_CONFIG `docker_config` (an
    empty one: the agent's pull login comes from ACR's /tokens)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ALIYUN_", "ALIBABA_CLOUD_"))}
    e.update({"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
              "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",  # never 100.100.100.200 from a test
              "DOCKER_CONFIG": str(docker_config), **extra})  # fmt: skip
    return e


# ---- the world ---------------------------------------------------------------------------------------
_WORLDS: list[World] = []


def _on_signal(signum: int, _frame: Any) -> None:
    for w in list(_WORLDS):
        w.close()
    sys.exit(128 + signum)


class World:
    """Everything named `<prefix>...`; use as a context manager (`with World("name") as w:`).

    `private_registry`: a docker-registry of its own (its access log: `registry_log_path`) rather than the
    dev-env one. `fake_module`: the fake ACR to run (`python -m <module> --port P --registry R`).
    `workdir`: where the run directory goes (a temporary directory by default), removed at close unless
    `keep`. `signals`: clean up on SIGINT/SIGTERM too (for scripts; pytest handles its own).
    """

    def __init__(self, name: str, *, prefix: str = "crb-", private_registry: bool = False,
                 fake_module: str = "tests.support.fake_acr", workdir: Path | None = None, keep: bool = False,
                 signals: bool = False) -> None:  # fmt: skip
        self.name, self.keep, self.signals = name, keep, signals
        self.private_registry, self.fake_module, self.workdir = private_registry, fake_module, workdir
        self.prefix = f"{prefix}{secrets.token_hex(3)}-"
        self.tags: dict[str, dict[str, str]] = {}
        self.registry_pid: int | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._to_drop: list[tuple[str, str | None, str, str]] = []
        self._drop_lock = threading.Lock()
        self._closed = False

    # -- bring-up and tear-down ------------------------------------------------------------------------
    def __enter__(self) -> World:
        if self.workdir is None:
            self.dir = Path(tempfile.mkdtemp(prefix=self.prefix + self.name + "-"))
        else:
            self.dir = self.workdir / (self.prefix + self.name)
            self.dir.mkdir(parents=True)
        _WORLDS.append(self)
        atexit.register(self.close)
        if self.signals:
            signal.signal(signal.SIGTERM, _on_signal)
            signal.signal(signal.SIGINT, _on_signal)
        try:
            ensure_services(acr_hosts=False)
            self.client = docker.from_env(timeout=600)
            self.api = self.client.api
            if self.private_registry:
                self._start_registry()
            else:
                self.registry, self.registry_log_path = env.REGISTRY, Path(env.REGISTRY_LOG)
            self._start_fake()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ns(self) -> str:
        return self.prefix + "ns"

    def _spawn(self, cmd: list[str], log_name: str, port: int, what: str) -> subprocess.Popen[bytes]:
        with open(self.dir / log_name, "ab") as logf:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._procs.append(proc)
        wait_port(port, 30, what, alive=lambda: proc.poll() is None)
        return proc

    def _start_registry(self) -> None:
        port = images.free_port()
        d = self.dir / "registry"
        (d / "data").mkdir(parents=True)
        subprocess.run(["htpasswd", "-Bbc", str(d / "htpasswd"), env.REGISTRY_USER, env.REGISTRY_PASSWORD],
                       check=True, capture_output=True)  # fmt: skip
        # The same configuration as scripts/dev-env.sh, on another port and directory.
        (d / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {d / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
            f"auth:\n  htpasswd:\n    realm: cr-agent-world\n    path: {d / 'htpasswd'}\n"
        )
        cmd = ["docker-registry", "serve", str(d / "config.yml")]
        self.registry_pid = self._spawn(cmd, "registry/registry.log", port, "docker-registry").pid
        self.registry = f"127.0.0.1:{port}"
        self.registry_log_path = d / "registry.log"

    def _start_fake(self) -> None:
        port = images.free_port()
        cmd = [sys.executable, "-m", self.fake_module, "--port", str(port), "--registry", self.registry]
        self._spawn(cmd, "fake-acr.log", port, "fake ACR")
        self.fake_url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        if self._closed or not hasattr(self, "dir"):
            return
        self._closed = True
        if hasattr(self, "client"):
            with contextlib.suppress(Exception):
                self.purge()
            time.sleep(
                0.5
            )  # a thread that was creating a container when we were stopped may just have finished
            with contextlib.suppress(Exception):
                self.purge()
        stop_processes(reversed(self._procs), grace=10)
        if self.keep:
            _log(f"{self.name}: kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _WORLDS:
            _WORLDS.remove(self)

    def purge(self) -> None:
        """Remove our containers (again while any remain, up to a minute), networks, volumes and images."""
        deadline = time.monotonic() + 60
        while self.containers() and time.monotonic() < deadline:
            purge(self.client, self.prefix)
        purge(self.client, self.prefix)

    def containers(self, prefix: str | None = None) -> list[str]:
        """Ids of the containers whose name starts with `prefix` (default: ours)."""
        prefix = prefix or self.prefix
        return [c["Id"] for c in self.api.containers(all=True, filters={"name": prefix})
                if any(n.lstrip("/").startswith(prefix) for n in c["Names"])]  # fmt: skip

    def remove_containers(self, prefix: str) -> None:
        """Remove (forced) the containers whose name starts with `prefix`, which must start with ours."""
        assert prefix.startswith(self.prefix), prefix
        for cid in self.containers(prefix):
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(cid, force=True, v=True)

    # -- images ----------------------------------------------------------------------------------------
    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.registry}/{self.ns}/{repo}:{tag}"

    def build_push(self, repo: str, marker: str, *, tag: str = "latest", http: bool = False, payload: int = 0,
                   files: dict[str, str] | None = None, publish: bool = True, keep_local: bool = True,
                   drop_now: bool = True) -> tuple[str, str]:  # fmt: skip
        """Build a busybox image FROM scratch, push it, and (publish) tell the fake ACR; return (id, digest).

        `http`: busybox httpd serving `marker` on 8080. `payload`: bytes of incompressible text in a layer of
        its own. `keep_local=False` deletes the local image after the push, as if it had been built elsewhere
        (CI): a later pull then has to download its new layers, while the busybox layers the running
        container shares stay, and the local tag points at the running image again. With `drop_now=False`
        that happens at the next `drop_local()`: deleting images while other threads build can pull a cached
        layer from under them.
        """
        ref = self.ref(repo, tag)
        files = {**(files or {}), **({"/payload": _random_text(payload)} if payload else {})} or None
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
                digest = images.push(ref, self.client)
                break
            except (docker.errors.BuildError, RuntimeError) as e:
                # "unable to find image": someone else on this engine deleted a cached layer, or pruned our
                # image in the moment between the build's last step and its tag.
                if attempt == 4:
                    raise
                _log(f"build/push of {ref} failed ({e}); again")
                time.sleep(0.5 * (attempt + 1))
        if not keep_local:
            with self._drop_lock:
                self._to_drop.append((image_id, old_id, ref, tag))
            if drop_now:
                self.drop_local()
        if publish:
            self.publish(repo, tag, digest)
        return image_id, digest

    def push(self, repo: str, marker: str, **kwargs: Any) -> str:
        """build_push(), returning the digest."""
        return self.build_push(repo, marker, **kwargs)[1]

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
            self.remove_refs(image_id, ref.rsplit(":", 1)[0])

    def remove_refs(self, image: str, repo: str) -> None:
        """Drop the references (tags, digests) of `repo` to `image`; Docker deletes it with the last of all.

        Never by id: a cached build FROM scratch can be the very image another repository has tagged."""
        info = self.api.inspect_image(image)
        for ref in (info.get("RepoTags") or []) + (info.get("RepoDigests") or []):
            if ref.startswith((repo + ":", repo + "@")):
                with contextlib.suppress(
                    docker.errors.NotFound
                ):  # a digest goes with the repository's last tag
                    self.api.remove_image(ref)

    def publish(self, repo: str, tag: str, digest: str) -> None:
        """Tell the fake ACR what the registry now has (ACR's view), so it never reads the registry itself."""
        self.tags.setdefault(repo, {})[tag] = digest
        self.fake_post("/_fake/tags", {"repo": f"{self.ns}/{repo}", "tags": self.tags[repo]})

    def fake_post(self, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.fake_url + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with opener().open(req, timeout=10) as resp:
            return json.loads(resp.read())

    def fake_stats(self) -> dict[str, Any]:
        with opener().open(self.fake_url + "/_fake/stats", timeout=10) as resp:
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

    # -- the agent's environment -----------------------------------------------------------------------
    def agent_config(self, file: str, watches: list[dict[str, Any]], *, interval: str = "1h",
                     parallel_pulls: int = 4, extra: str = "", state: str = "state") -> Path:  # fmt: skip
        """agent_toml() in a file under the run directory, its state there too."""
        path = self.dir / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(agent_toml(self.fake_url, self.dir / state, watches, extra=extra,
                                   agent=f'interval = "{interval}"\nparallel_pulls = {parallel_pulls}'))  # fmt: skip
        return path

    def agent_env(self, **extra: str) -> dict[str, str]:
        return agent_environ(self.docker_config("agent", False), **extra)

    def docker_config(self, who: str, with_login: bool) -> Path:
        """A DOCKER_CONFIG directory for one peer only; with_login: config.json as `docker login` writes it."""
        d = self.dir / f"docker-config-{who}"
        d.mkdir(exist_ok=True)
        if with_login:
            token = base64.b64encode(f"{env.REGISTRY_USER}:{env.REGISTRY_PASSWORD}".encode()).decode()
            (d / "config.json").write_text(json.dumps({"auths": {self.registry: {"auth": token}}}))
        return d
