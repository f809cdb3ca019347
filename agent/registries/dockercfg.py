"""Registry logins stored by `docker login` ($DOCKER_CONFIG/config.json or ~/.docker/config.json).

Only plain `auths` entries are read; credential helpers are left to docker itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path


def docker_config_auth(host: str) -> tuple[str, str] | None:
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    try:
        auths = json.loads((Path(base) / "config.json").read_text()).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    for key in (host, f"https://{host}", f"https://{host}/v2/", f"http://{host}"):
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return (user, password) if sep and user else None
    return None
