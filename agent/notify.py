"""Notifications through apprise (Telegram, DingTalk, WeCom, e-mail, Slack, JSON webhooks, ...)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Collection, Sequence

from loguru import logger

from agent.logs import redact
from agent.model import Report, Status, short_digest

DEFAULT_EVENTS = ("updated", "rolled_back", "failed", "would_update")
logging.getLogger("apprise").addHandler(logging.NullHandler())  # its URLs carry tokens: we log ourselves
logging.getLogger("apprise").propagate = False


class Notifier:
    def __init__(self, urls: Sequence[str], events: Collection[str] = DEFAULT_EVENTS) -> None:
        self.urls = list(urls)
        self.events = set(events)
        self.host = socket.gethostname()

    def message(self, report: Report) -> tuple[str, str, bool] | None:
        """(title, body, is_failure) for the results worth telling, or None."""
        told = [
            r for r in report.results if r.status.value in self.events and not r.detail.get("seen_before")
        ]
        if not told:
            return None
        counts: dict[str, int] = {}
        for r in told:
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        title = f"cr-agent on {self.host}: " + ", ".join(
            f"{n} {s.replace('_', ' ')}" for s, n in counts.items()
        )
        lines = []
        for r in told:
            line = f"{r.container}: {r.status.value} {short_digest(r.current_digest)} → {short_digest(r.latest_digest)}"
            lines.append(line + (f"\n  {r.error}" if r.error else ""))
        failure = any(r.status in (Status.FAILED, Status.ROLLED_BACK) for r in told)
        return redact(title), redact("\n".join(lines)), failure

    def on_pass(self, report: Report, seconds: float) -> None:
        """Send one message per pass with something to tell. Never raises."""
        msg = self.message(report)
        if msg is None:
            return
        title, body, failure = msg
        try:
            import apprise

            ap = apprise.Apprise()
            for url in self.urls:
                ap.add(url)
            kind = apprise.NotifyType.FAILURE if failure else apprise.NotifyType.SUCCESS
            ok = ap.notify(title=title, body=body, notify_type=kind)
        except Exception as e:
            logger.warning("notification failed: {}", type(e).__name__)
            return
        if ok:
            logger.info("notification sent: {}", title)
        else:
            logger.warning("notification failed for at least one of {} URL(s)", len(self.urls))
