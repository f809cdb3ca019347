"""systemd unit files read the way systemd reads them (systemd.syntax(7)): "#" and ";" start a comment
only at the beginning of a line, so anything after a value, comments included, is part of the value."""

from __future__ import annotations

import re

_SPAN = re.compile(r"(\d+)\s*(ms|min|sec|hr|s|m|h)?\s*")
_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values...]}} with values verbatim, after joining backslash continuations."""
    units: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if pending and line[:1] in ("#", ";"):
            continue  # comment lines inside a continuation are skipped
        line = pending + line
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line.startswith("[") and line.endswith("]"):
            section = units.setdefault(line[1:-1], {})
            continue
        if section is None or "=" not in line:
            raise ValueError(f"not a unit file line: {raw!r}")
        key, value = line.split("=", 1)
        section.setdefault(key.strip(), []).append(value.strip())
    return units


def timespan(value: str) -> float:
    """systemd.time(7) for the units used here: "300" (seconds), "5min", "1min 30s"."""
    pos, total = 0, 0.0
    for m in _SPAN.finditer(value):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(value) or not value:
        raise ValueError(f"not a time span: {value!r}")
    return total


def inline_comments(units: dict[str, dict[str, list[str]]]) -> list[str]:
    """Values that carry a would-be trailing comment, which systemd keeps as part of the value."""
    return [
        f"[{name}] {key}={v}"
        for name, keys in units.items()
        for key, values in keys.items()
        for v in values
        if re.search(r"\s[#;]", v)
    ]
