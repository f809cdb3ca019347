"""`agent init`: [[watch]] entries for the containers that run now, or a complete config with --write.

Only running containers whose image comes from an ACR host (`--all`: any registry host), each shown
with its image, tag and current digest. The written file is checked by the loader before it is
written, and an existing file is replaced only with --force.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.compat import tomllib
from agent.config.load import parse
from agent.errors import AgentError
from agent.model import HELPER_SUFFIX, NEW_SUFFIX, OLD_SUFFIX, ImageRef, digest_for_repo
from agent.registries.acr_hosts import parse_host
from agent.runtimes.probe import Probe

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

HEADER = """\
# cr-agent configuration, written by `agent init` from the containers running on {host}.
# Check it with:  agent check -c {path}    (agent.toml.example in the repository explains every key)
# Durations take a unit: "250ms", "30s", "5m", "1h30m".

[agent]
interval = "5m"                  # how often `agent run` checks; or cron = "*/5 * * * *"
# jitter = "30s"                 # random delay added to each scheduled pass
# state_dir = "/var/lib/cr-agent"   # journal, history, quarantine, pins; and the run lock
# mode = "update"                # or "notify": monitor only; `agent update NAME` updates on demand
# discover = "labels"            # also watch containers labelled cr-agent.enable=true (docs/labels.md)

[aliyun]
# Credentials come from the environment: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET
# (a RAM user with read access to Container Registry); keep them in /etc/cr-agent/env (mode 0600).
# region = "cn-hangzhou"         # only for a custom registry domain

# [notify]
# urls_env = "CR_AGENT_NOTIFY_URLS"   # dingtalk://, wecombot://, feishu://… (docs/notifications.md)
"""


@dataclass(frozen=True)
class Found:
    container: str
    image: str  # the tag it follows, host/ns/repo:tag
    digest: str | None  # what it runs, or None for an image built here
    acr: bool


def _is_acr(ref: ImageRef) -> bool:

    try:
        parse_host(ref.host)
    except ValueError:
        return False
    return True


def running(probe: Probe) -> tuple[list[Found], list[str]]:
    """(the running containers with a followable image, why others were left out)."""
    found, skipped = [], []
    for name, text, repo_digests in probe.running():
        if name.endswith((OLD_SUFFIX, NEW_SUFFIX, HELPER_SUFFIX)):
            continue
        try:
            ref = ImageRef.parse(text)  # Docker Hub's short names are left out: no host
        except ValueError as e:
            skipped.append(f"{name}: {text}: {e}")
            continue
        digests = digest_for_repo(repo_digests, ref.repo)
        found.append(
            Found(name, f"{ref.repository}:{ref.tag}", digests[0] if digests else None, _is_acr(ref))
        )
    return sorted(found, key=lambda f: f.container), skipped


def entries(found: list[Found]) -> str:
    out = []
    for f in found:
        out.append(
            f"# {f.container}: {f.image}, running {f.digest or 'an image built here (no registry digest)'}"
        )
        out.append(f"[[watch]]\ncontainer = {json.dumps(f.container)}\nimage = {json.dumps(f.image)}\n")
    return "\n".join(out)


def _validate(text: str) -> None:
    """The loader must accept what we write (the keys are made up: they come from the environment)."""

    parse(
        tomllib.loads(text),
        {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"},
    )


def run_init(*, all_images: bool, write: Path | None, force: bool) -> int:
    import socket

    from agent.cli.check import engine_error  # the docker SDK

    if write is not None and write.exists() and not force:
        print(f"agent init: {write} exists; give --force to replace it", file=sys.stderr)
        return EXIT_USAGE
    try:
        probe = Probe(timeout=30)
        found, skipped = running(probe)
        probe.close()
    except AgentError as e:
        f = engine_error(e, "Docker")
        print(f"agent init: {f.text}; fix: {f.fix}", file=sys.stderr)
        return EXIT_FAILED
    chosen = [f for f in found if all_images or f.acr]
    left = len(found) - len(chosen)
    print(
        f"# {len(chosen)} running container(s) with {'an image from a registry' if all_images else 'an ACR image'}"
        + (f"; {left} more with other registries' images: `agent init --all`" if left else "")
    )
    for why in skipped:
        print(f"# left out {why}")
    if not chosen:
        print("agent init: nothing to watch", file=sys.stderr)
        return EXIT_FAILED
    body = entries(chosen)
    if write is None:
        print(body)
        return EXIT_OK
    text = HEADER.format(host=socket.gethostname(), path=write) + "\n" + body
    _validate(text)
    write.parent.mkdir(parents=True, exist_ok=True)
    write.write_text(text, encoding="utf-8")
    print(f"wrote {write} ({len(chosen)} [[watch]] entries); next: agent check -c {write}")
    return EXIT_OK
