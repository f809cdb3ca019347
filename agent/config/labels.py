"""The label vocabulary (`cr-agent.*`) and where each setting of an entry came from, for `check` and
`status`. Pure: label discovery itself is agent/reconcile/discover.py."""

from __future__ import annotations

from agent.config.schema import Watch

PREFIX = "cr-agent"
ENABLE = f"{PREFIX}.enable"
IMAGE = f"{PREFIX}.image"  # written by the agent on a replacement (runtimes/docker.py), or by the user
# label → [[watch]] key; a nested key is a dotted path ("health.http")
SETTINGS = (
    "strategy",
    "health.http",
    "health.tcp",
    "min_uptime",
    "mode",
    "tag",
    "source",
    "signatures",
    "signature_identity",
)
# Watchtower's labels that mean the same (docs/watchtower.md); ours win when both are set
WATCHTOWER = "com.centurylinklabs.watchtower"
WT_ENABLE = f"{WATCHTOWER}.enable"
WT_MONITOR_ONLY = f"{WATCHTOWER}.monitor-only"
FROM_WT_MONITOR_ONLY = "mode<-monitor-only"  # in Watch.given: mode came from Watchtower's label


def origins(w: Watch) -> dict[str, str]:
    """Where each setting of an entry came from: its [[watch]] entry, a label, the container, a default."""
    out = {}
    for key in ("image", "tag", "source", "strategy", "health", "min_uptime", "mode"):
        if w.origin == "config":
            given = key in w.given or (key == "tag" and {"tag_regex", "sort"} & w.given)
            out[key] = "config" if given else "default"
        elif key == "image":
            out[key] = w.kind
        elif key == "mode" and FROM_WT_MONITOR_ONLY in w.given:
            out[key] = f"label {WT_MONITOR_ONLY}"
        elif key in w.given:
            out[key] = "label " + ", ".join(f"{PREFIX}.{k}" for k in SETTINGS if k.split(".")[0] == key)
        else:
            out[key] = "default"
    return out


def describe(w: Watch) -> str:
    """One line for `agent check` and `agent status`: the entry and where each setting came from."""
    where = ", ".join(f"{k} from {v}" for k, v in origins(w).items() if v != "default")
    pattern = f", tag pattern {w.pattern}" if w.pattern else ""
    mode = ", monitor only" if w.mode == "notify" else ""
    head = "[[watch]]" if w.origin == "config" else "labels"
    kind = "service " if w.kind == "service" else ""
    return f"{kind}{w.container} ← {w.image} ({head}: source {w.source}, strategy {w.strategy}{pattern}{mode}; {where})"
