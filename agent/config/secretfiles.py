"""Warnings for files that hold secrets and can be read by other users: the config, and the env file
(`env` beside the config, as in /etc/cr-agent/env, which the systemd units and the cron line load)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from agent.compat import tomllib
from agent.config.envvalues import env_file_warning

# keys whose inline value is a secret (their *_env forms only name a variable)
SECRET_KEYS = frozenset({"access_key_secret", "security_token", "password", "token", "urls"})
ENV_FILE_NAME = "env"


def _holds_secret(node: Any) -> bool:
    if isinstance(node, dict):
        return any((k in SECRET_KEYS and v) or _holds_secret(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_holds_secret(v) for v in node)
    return False


def _config_has_secrets(path: Path) -> bool:
    try:
        return _holds_secret(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # load() reports those


def _open_to_others(path: Path) -> int | None:
    """The file's permission bits when group or others may read it, else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o044 else None


def warnings(config_path: Path) -> list[str]:
    """One line per secret-holding file that group or others can read."""
    found = []
    mode = _open_to_others(config_path)
    if mode is not None and _config_has_secrets(config_path):
        found.append((config_path, mode, "holds secrets"))
    env_file = config_path.parent / ENV_FILE_NAME
    mode = _open_to_others(env_file) if env_file.is_file() else None
    if mode is not None:
        found.append((env_file, mode, "is the env file holding credentials"))
    out = [f"{p} {why} and is readable by other users (mode {m:04o}): chmod 600 {p}" for p, m, why in found]
    try:
        text = env_file.read_bytes().decode("utf-8", "replace") if env_file.is_file() else ""  # keeps \r
    except OSError:  # not ours to read (root's file): systemd or docker reads it
        text = ""
    line_ends = env_file_warning(text, str(env_file))
    return out + ([line_ends] if line_ends else [])
