"""`agent check` without --online: what costs nothing, looked at on this host, each problem with its fix.

Docker answers (per engine the entries name), `state_dir` is writable, and per [[watch]] entry: its
container (or service) exists and runs an image of the watched repository, and an ACR host names a
known region. A problem makes `check` exit 1; a warning does not.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.choices import Source
from agent.config import Config, Watch
from agent.errors import AgentError
from agent.model import digest_for_repo, repository_path
from agent.registries.acr_hosts import parse_host
from agent.registries.acr_regions import region_problem
from agent.runtimes.probe import Probe
from agent.secret import redact

SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Finding:
    level: str  # ok, warning, problem
    text: str
    fix: str = ""


def engine_error(exc: BaseException, where: str) -> Finding:
    """Why an engine does not answer, in words, with the fix."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(f"{type(x).__name__} {x}" for x in chain)
    if "PermissionError" in text or "Permission denied" in text:
        return Finding(
            "problem",
            f"{where}: the Docker socket needs root (permission denied)",
            "run as root (sudo agent …), or add this user to the `docker` group",
        )
    if "FileNotFoundError" in text or "No such file" in text or "Connection refused" in text:
        return Finding(
            "problem",
            f"{where}: Docker is not running, or its socket is elsewhere",
            "start Docker (systemctl start docker), or set DOCKER_HOST to its socket",
        )
    return Finding(
        "problem",
        f"{where}: Docker does not answer: {exc}",
        "check that the engine runs and DOCKER_HOST / docker_host points to it",
    )


def state_dir_finding(state_dir: Path) -> Finding:
    """Writable now, or creatable: the nearest existing parent is writable."""
    fix = "run as root, or set [agent] state_dir to a directory this user can write"
    target = state_dir
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        return Finding("problem", f"state_dir {state_dir}: {target} is not a directory", fix)
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".cr-agent-check-"):
            pass
    except OSError as e:
        return Finding("problem", f"state_dir {state_dir} is not writable ({e.strerror or e})", fix)
    made = "" if target == state_dir else " (it will be created)"
    return Finding("ok", f"state_dir {state_dir} is writable{made}")


def container_findings(probe: Probe, w: Watch) -> list[Finding]:
    """The entry's container (or service) exists and runs an image of the watched repository."""
    word = "service" if w.kind == "service" else "container"
    try:
        found = probe.image_of(w.container, service=w.kind == "service")
    except AgentError as e:  # the engine went away between the ping and now
        return [engine_error(e, f"{word} `{w.container}`")]
    if found is None:
        if w.optional:
            return [Finding("ok", f"{word} `{w.container}` not found (optional: skipped until it exists)")]
        return [
            Finding(
                "problem",
                f"{word} `{w.container}` not found",
                f"start it first (`docker ps -a` lists the names), or set `{word}` in its [[watch]] "
                "entry to the right name (`agent init` prints entries for what runs)",
            )
        ]
    image, digests = found
    if digest_for_repo(digests, w.image.repo) or repository_path(image) == w.image.repo.path:
        return [Finding("ok", f"{word} `{w.container}` runs {image}")]
    return [
        Finding(
            "warning",
            f"{word} `{w.container}` runs {image}, not an image of {w.image.repo}",
            f"set `image` in its [[watch]] entry to the repository it runs, or recreate it from {w.image}",
        )
    ]


def host_findings(cfg: Config, w: Watch) -> list[Finding]:
    """An ACR host's region must be one ACR has (a misspelt `cn-hangzou` resolves nowhere)."""

    if w.source is not Source.ALIYUN:
        return []
    try:
        host = parse_host(
            w.image.host,
            region=cfg.aliyun.region,
            instance_id=w.instance_id,
            edition=cfg.aliyun.edition,
            default_instance_id=cfg.aliyun.instance_id,
        )
    except ValueError as e:  # load() refuses these already; kept for configs built in code
        return [Finding("problem", str(e), "use one of the host forms above (docs/acr.md)")]
    found = region_problem(host.region)
    if found is None:
        return []
    level, text = found
    where = "[aliyun] region" if host.form == "custom" else f"the host {w.image.host}"
    return [Finding(level, f"{w.container}: {text} (in {where})", "fix the region in the image's host "
                    "(the ACR console shows it under the repository's access credentials)")]  # fmt: skip


def findings(cfg: Config) -> list[Finding]:
    out = [state_dir_finding(cfg.agent.state_dir)]
    engines: dict[str | None, list[Watch]] = {}
    for w in cfg.watches:
        engines.setdefault(w.docker_host, []).append(w)
        out += host_findings(cfg, w)
    if not engines or cfg.agent.discover:
        engines.setdefault(None, [])
    for host, watches in engines.items():
        where = f"engine {host}" if host else f"Docker ({os.environ.get('DOCKER_HOST') or SOCKET})"
        tls = next((w.docker_tls_dir for w in watches if w.docker_tls_dir), None)
        try:
            probe = Probe(host, tls)
            version = probe.version()
        except AgentError as e:
            out.append(engine_error(e, where))
            continue
        out.append(Finding("ok", f"{where} answers (Docker {version})"))
        for w in watches:
            out += container_findings(probe, w)
        probe.close()
    return out


def check_engine(cfg: Config) -> bool:
    """Print the findings; True when none is a problem."""
    found = findings(cfg)
    print("on this host:")
    for f in found:
        mark = {"ok": "ok     ", "warning": "WARNING", "problem": "PROBLEM"}[f.level]
        print(redact(f"  {mark} {f.text}" + (f"\n          fix: {f.fix}" if f.fix else "")))
    problems = sum(f.level == "problem" for f in found)
    warnings = sum(f.level == "warning" for f in found)
    if problems:
        print(f"{problems} problem(s), {warnings} warning(s): fix them, then run `agent check` again")
    elif warnings:
        print(f"no problems, {warnings} warning(s)")
    return problems == 0
