"""The HTML: Jinja2 templates with autoescaping on, rendered from the status data (snapshot.py).

Every string that comes from outside (names, labels, log lines, errors) reaches the page through
Jinja's escaping: it is text, never markup. The timeline is an inline SVG laid out here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.ui.snapshot import TIMELINE_DAYS
from agent.ui.words import STATES, words

_HERE = Path(__file__).parent
_lock = threading.Lock()
_env: Any = None
WIDTH, LANE, LABEL = 1000, 22, 170  # the timeline's viewBox width, row height, label column
COLORS = {
    "updated": "#2e7d32",
    "rolled_back": "#ef6c00",
    "failed": "#c62828",
    "interrupted": "#c62828",
    "recovered": "#1565c0",
}


def environment() -> Any:
    """The Jinja2 environment, made on the first request (importing jinja2 costs memory)."""
    global _env
    with _lock:
        if _env is None:
            import jinja2

            _env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(_HERE / "templates"),
                autoescape=True,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            _env.filters.update(short=short, when=when, span=span)
        return _env


def short(digest: str | None) -> str:
    if not isinstance(digest, str) or not digest:
        return "-"
    return digest.split(":", 1)[-1][:12]


def when(ts: float | None) -> str:
    if not isinstance(ts, (int, float)) or not ts:
        return "-"
    return datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M:%S")


def span(seconds: float | None) -> str:
    """3s, 4m 10s, 2h 5m, 3d 4h."""
    if not isinstance(seconds, (int, float)):
        return "-"
    s = int(abs(float(seconds)))
    for size, unit, sub, subunit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s")):
        if s >= size:
            rest = (s % size) // sub
            return f"{s // size}{unit}" + (f" {rest}{subunit}" if rest else "")
    return f"{float(seconds):.1f}s" if float(seconds) < 10 else f"{s}s"


def timeline(events: list[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """The SVG's lanes (one per entry with events) and marks, in viewBox units."""
    start = now - TIMELINE_DAYS * 86400
    scale = (WIDTH - LABEL - 10) / (now - start)
    names = sorted({str(e["container"]) for e in events})
    lanes = {n: i for i, n in enumerate(names)}
    marks = []
    for e in events:
        x = LABEL + max(0.0, float(e["started"]) - start) * scale
        w = max(4.0, float(e.get("duration") or 0) * scale)
        marks.append({
            "x": round(x, 1), "y": lanes[str(e["container"])] * LANE + 4, "w": round(w, 1), "h": LANE - 8,
            "color": COLORS.get(str(e["outcome"]), "#616161"), "event": e,
        })  # fmt: skip
    days = [
        {
            "x": round(LABEL + d * 86400 * scale, 1),
            "anchor": "end" if d == TIMELINE_DAYS else "middle",
            "label": datetime.fromtimestamp(start + d * 86400).strftime("%m-%d"),
        }
        for d in range(0, TIMELINE_DAYS + 1, 5)
    ]
    return {"lanes": names, "marks": marks, "days": days, "height": max(1, len(names)) * LANE + 20,
            "width": WIDTH, "label": LABEL, "lane": LANE}  # fmt: skip


def render(data: Mapping[str, Any], lang: str, *, fragment: bool = False, open_entry: str = "") -> str:
    """The whole page, or only its live part (what the refresh script swaps in); `open_entry` is shown
    with its history unfolded (`/?open=<name>`, a link a notification can carry)."""
    now = float(data.get("generated") or time.time())
    counts: dict[str, int] = {}
    for c in data.get("containers", []):
        counts[c["state"]] = counts.get(c["state"], 0) + 1
    view = {
        "data": data, "lang": lang, "t": words(lang), "states": STATES[lang], "now": now, "counts": counts,
        "line": timeline(list(data.get("events", [])), now), "agent": data.get("agent") or {},
        "colors": COLORS, "open": open_entry,
    }  # fmt: skip
    name = "live.html" if fragment else "status.html"
    return str(environment().get_template(name).render(**view))
