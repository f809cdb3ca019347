"""Scenario 2: push-to-running latency. Push a new image; time until the container serves it.

Each tool keeps its own container of its own repository up to date (a busybox httpd whose page
is the image's marker, published on a loopback port). A trial waits a random part of the polling
interval (so the push lands at a random phase of the schedule), pushes, tells the fake ACR, and
polls http://127.0.0.1:PORT/ every 20 ms until the page shows the new marker. t0 is the end of
the push (when ACR would also fire its webhook).

* cr-agent, `agent run` with interval "10s" and an HTTP health probe;
* Ouroboros, `ouroboros -i 10` (it raises any interval below 30 s to 30 s, silently; recorded);
* cr-agent's webhook: interval "1h", and right after the push a POST of an ACR trigger payload to
  /hooks/aliyun/<token>; with the default debounce and with debounce "0s".

    python -m bench.latency [--reps 5] [--interval 10] [--quick]
"""

from __future__ import annotations

import http.client
import json
import random
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
from tests.support import payloads
from tests.support.images import free_port
from tests.support.world import HTTPD, opener, stop_processes, wait_port


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--interval", type=int, default=10, help="polling interval in seconds (both tools)")
    a = p.parse_args(argv)
    reps = a.reps or (1 if a.quick else 5)
    py = None if (a.no_ouroboros or a.quick) else common.ouroboros_python()
    started = time.monotonic()
    out: dict[str, Any] = {"reps": reps, "interval": a.interval, "variants": {}}
    with World("latency", shared_registry=a.shared_registry, keep=a.keep, fake_nagle=a.fake_nagle) as w:
        out["facts"] = w.facts
        variants: list[tuple[str, dict[str, Any]]] = [
            ("cr-agent poll", {"kind": "agent", "interval": f"{a.interval}s"}),
            (
                f"cr-agent webhook, default debounce ({_default_debounce()})",
                {"kind": "agent", "webhook": None},
            ),
            ("cr-agent webhook, debounce 0s", {"kind": "agent", "webhook": "0s"}),
        ]
        if py is not None:
            variants.insert(1, ("ouroboros poll", {"kind": "ouroboros", "interval": a.interval}))
            out["ouroboros"] = common.ouroboros_versions(py)
        for i, (label, spec) in enumerate(variants):
            log(f"latency: {label}")
            out["variants"][label] = _variant(w, f"l{i}", spec, reps, py)
            v = out["variants"][label]
            if v.get("error"):
                log(f"latency: {label}: {v['error']}")
    out["seconds"] = round(time.monotonic() - started, 1)
    common.write_result("latency", a.quick, out)
    broken = [k for k, v in out["variants"].items() if k.startswith("cr-agent") and v.get("error")]
    return 1 if broken else 0


def _default_debounce() -> str:
    from agent.config import WebhookSettings

    return f"{WebhookSettings.__dataclass_fields__['debounce'].default:g}s"


def _variant(w: World, name: str, spec: dict[str, Any], reps: int, py: Path | None) -> dict[str, Any]:
    repo = f"web-{name}"
    port = free_port()
    w.push(repo, f"{name}-v0", http=True)
    cname = w.run(name, repo, ports={8080: port})
    _wait_serving(port, f"{name}-v0", 30)
    logf = w.dir / f"{name}.log"
    token = secrets.token_hex(16)
    hook_port = free_port()
    if spec["kind"] == "agent":
        extra = ""
        if "webhook" in spec:
            extra = f'[webhook]\nlisten = "127.0.0.1:{hook_port}"\ntoken = "{token}"\n'
            if spec["webhook"] is not None:
                extra += f'debounce = "{spec["webhook"]}"\n'

        health = f'{{ http = "http://127.0.0.1:{port}/", timeout = "2s", interval = "100ms" }}'
        cfg = w.agent_config(f"{name}.toml", [{"container": cname, "image": w.ref(repo), "health": health}],
                             interval=spec.get("interval", "1h"), extra=extra, state=f"state-{name}")  # fmt: skip
        cmd, env = common.agent_cmd("run", "--log-json", "-c", str(cfg)), w.agent_env()
        period = float(spec["interval"][:-1]) if "interval" in spec else 0.0
    else:
        assert py is not None
        cmd = common.ouroboros_cmd(
            py, "-i", str(spec["interval"]), "--skip-startup-notifications", "-m", cname
        )
        env = w.ouroboros_env()
        period = max(30.0, float(spec["interval"]))  # what it really does: see Config.parse, "interval < 30"
    with open(logf, "wb") as fh:
        daemon = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=w.dir)
    result: dict[str, Any] = {"trials": [], "period": period}
    try:
        time.sleep(2.0)  # let the first (start-up) pass happen before any push
        if "webhook" in spec:
            wait_port(hook_port, 20, "the webhook", alive=lambda: daemon.poll() is None)
        for rep in range(reps):
            marker = f"{name}-v{rep + 1}"
            if period:
                time.sleep(random.uniform(0, period))
            trial = _trial(w, repo, cname, port, marker, period, daemon,
                           hook=(hook_port, token) if "webhook" in spec else None)  # fmt: skip
            result["trials"].append(trial)
            log(f"  {name} trial {rep + 1}/{reps}: {trial['latency']:.2f}s")
    except Exception as e:  # noqa: BLE001 - recorded; the caller decides what is a breakage
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        stop_processes([daemon], 30)
    text = logf.read_text(errors="replace")
    result["log_tail"] = text[-3000:]
    if spec["kind"] == "agent":
        _split_agent(result["trials"], text)
    else:
        result["notes"] = _ouroboros_notes(text, spec["interval"])
    for key in ("latency", "after_pass_start", "pass_to_pulled", "pulled_to_done"):
        result[key] = common.stats(t.get(key) for t in result["trials"])
    return result


def _trial(w: World, repo: str, cname: str, port: int, marker: str, period: float, daemon: subprocess.Popen[bytes],
           hook: tuple[int, str] | None) -> dict[str, Any]:  # fmt: skip
    from tests.support import images

    ref = w.ref(repo)
    # Built before t0 (only the push counts), and removed after the push, as if CI had built it elsewhere:
    # the tool's pull then downloads the new layer, and the local tag stays on the running image.
    old_id = w.api.inspect_image(ref)["Id"]
    image_id = images.build_http_image(ref, marker, cmd=HTTPD, docker_client=w.client)
    digest = images.push(ref, w.client)
    w.api.tag(old_id, ref.rsplit(":", 1)[0], "latest", force=True)
    w.api.remove_image(image_id)
    t0 = time.time()
    w.publish(repo, "latest", digest)
    if hook:
        _post_hook(hook[0], hook[1], w.ns, repo, digest)
    deadline = t0 + 2 * period + 90
    while True:
        if _page(port) == marker:
            t1 = time.time()
            break
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode}")
        if time.time() > deadline:
            raise TimeoutError(f"{marker} not served within {deadline - t0:.0f}s of the push")
        time.sleep(0.02)
    _wait_settled(w, cname, image_id, 60)
    return {"t0": t0, "t1": t1, "latency": t1 - t0, "digest": digest}


def _post_hook(port: int, token: str, namespace: str, name: str, digest: str) -> None:
    payload = payloads.acr_payload(namespace, name, digest=digest)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/aliyun/{token}", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
    with opener().open(req, timeout=5) as resp:
        if resp.status not in (200, 202):
            raise RuntimeError(f"webhook answered {resp.status}")


def _page(port: int) -> str | None:
    try:
        with opener().open(f"http://127.0.0.1:{port}/", timeout=0.2) as resp:
            return resp.read().decode().strip()
    except (OSError, urllib.error.URLError, http.client.HTTPException):  # a container stopping mid-answer
        return None


def _wait_serving(port: int, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _page(port) != marker:
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} does not serve {marker}")
        time.sleep(0.05)


def _wait_settled(w: World, cname: str, image_id: str, timeout: float) -> None:
    """The replacement is over: the container runs the new image and no side container is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        others = [n for c in w.api.containers(all=True, filters={"name": cname}) for n in c["Names"]
                  if n.lstrip("/").startswith(cname + "-")]  # fmt: skip
        try:
            c = w.api.inspect_container(cname)
        except Exception:  # noqa: BLE001 - between remove and create
            c = None
        if c and c["State"]["Running"] and c["Image"] == image_id and not others:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{cname}: the replacement did not settle within {timeout}s")


def _split_agent(trials: list[dict[str, Any]], text: str) -> None:
    """From the agent's `--log-json` events: when the pass that deployed each push started, and when its pull ended."""
    starts = [e["ts"] for e in common.agent_events(text, "pass.start")]
    pulled = [(e["ts"], e["to_digest"]) for e in common.agent_events(text, "plan.update")]
    done = [
        (e["ts"], e["to_digest"])
        for e in common.agent_events(text, "pass.result")
        if e.get("status") == "updated"
    ]
    for t in trials:
        before = [ts for ts in starts if ts <= t["t1"]]
        got = [ts for ts, digest in pulled if digest == t["digest"] and ts >= t["t0"] - 0.01]
        end = [ts for ts, digest in done if digest == t["digest"] and ts >= t["t0"] - 0.01]
        if before:
            t["after_pass_start"] = t["t1"] - before[-1]
            if got:
                t["pass_to_pulled"] = got[0] - before[-1]
        if got and end:
            t["pulled_to_done"] = end[0] - got[0]


def _ouroboros_notes(text: str, asked: int) -> list[str]:
    notes = []
    if asked < 30:
        notes.append(f"asked for -i {asked}; Ouroboros raises any interval below 30 s to 30 s without a word")
    if "has no attribute 'servers'" in text:
        notes.append("after each update its notifier raised AttributeError: 'Apprise' object has no attribute "
                     "'servers' inside the scheduler job (the container had already been recreated)")  # fmt: skip
    return notes


if __name__ == "__main__":
    sys.exit(main())
