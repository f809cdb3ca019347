"""Cron expressions as crontab(5) reads them (cronsim: 0 and 7 are Sunday): the one parser that
`agent check` and the scheduler of `agent run` share."""

from __future__ import annotations

from datetime import datetime

# crontab(5)'s nicknames; @reboot has no meaning for a daemon that passes at start anyway
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def parse_cron(expr: str) -> str:
    """The 5-field expression `expr` stands for; raise ValueError saying what is wrong."""
    from cronsim import CronSim, CronSimError

    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise ValueError(f"unknown cron nickname {expr!r} (known: {', '.join(ALIASES)})")
        return ALIASES[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day month weekday), got {len(fields)}: {expr!r}"
        )
    try:
        next(CronSim(" ".join(fields), datetime(2000, 1, 1)))
    except (CronSimError, StopIteration) as e:
        raise ValueError(f"invalid cron expression {expr!r}: {e or 'it never fires'}") from None
    return " ".join(fields)
