"""A state_dir that is full or dead (issue 20.3): no replacement starts without room for its journal."""

from __future__ import annotations

import shutil
from pathlib import Path

MIN_FREE = 1 << 20  # bytes: below this a replacement is skipped, not started


def low_space(state_dir: Path) -> str | None:
    """Why no replacement may start (under MIN_FREE free in `state_dir`), or None."""
    try:
        free = shutil.disk_usage(state_dir).free
    except OSError as e:
        return f"state_dir {state_dir} cannot be used: {e.strerror or e}; the replacement is not started"
    if free >= MIN_FREE:
        return None
    return (
        f"state_dir {state_dir} has {free // 1024} KiB free, under 1 MiB: the replacement is not started "
        "until its journal can be written; free some space"
    )


def unwritable(e: Exception) -> str:
    """`state_dir is full: …` or `state_dir cannot be written: …`."""
    what = "is full" if "full" in str(e).lower() else "cannot be written"
    return f"state_dir {what}: {e}"
