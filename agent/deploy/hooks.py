"""`pre_update` and `post_update`: shell commands run with only the documented variables."""

from __future__ import annotations

import os
import subprocess

from agent.secret import redact

# Passed through from the agent's environment: what a shell needs, nothing that may hold a secret.
_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")


def hook_env(container: str, image: str, from_digest: str | None, to_digest: str) -> dict[str, str]:
    """The environment of a hook: the documented CR_AGENT_* variables (docs/configuration.md)."""
    env = {k: os.environ[k] for k in _PASSED if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(
        {
            "CR_AGENT_CONTAINER": container,
            "CR_AGENT_IMAGE": image,
            "CR_AGENT_FROM_DIGEST": from_digest or "",
            "CR_AGENT_TO_DIGEST": to_digest,
        }
    )
    return env


def run_hook(command: str, timeout: float, env: dict[str, str]) -> tuple[bool, str]:
    """Run a hook through the shell; (ok, last output line or reason), secrets redacted."""
    try:
        proc = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:g}s"
    out = (proc.stdout + proc.stderr).strip().splitlines()
    tail = redact(out[-1]) if out else ""
    if proc.returncode != 0:
        return False, f"exit code {proc.returncode}{': ' + tail if tail else ''}"
    return True, tail
