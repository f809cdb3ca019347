"""Dead-man's switch (healthchecks.io style): `<url>/start` when a pass starts, `<url>` when it
succeeds, `<url>/fail` with the summary when it fails. A ping never holds a pass longer than `timeout`.
"""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from loguru import logger

from agent.model import Report
from agent.notify.text import KINDS, body, item_for, title
from agent.secret import Secret, redact

TIMEOUT = 5.0


def with_suffix(url: str, suffix: str) -> str:
    """`https://hc-ping.com/<uuid>` + `/start` → `https://hc-ping.com/<uuid>/start` (query kept)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def summary(report: Report) -> str:
    """Plain English text of what went wrong in a pass, for the `/fail` body."""
    items = [i for r in report.results if not r.status.ok and (i := item_for(r, KINDS))]
    return title(socket.gethostname(), items, "en") + "\n\n" + body(items, "en", markdown=False)


class Heartbeat:
    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout

    def ping(self, suffix: str = "", text: str = "") -> bool:
        """POST `text` to the URL + `suffix`; False (and a warning without the URL) on any failure."""
        done: list[str] = []

        def send() -> None:
            request = urllib.request.Request(
                with_suffix(self.url, suffix),
                data=redact(text).encode(),
                method="POST",
                headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "cr-agent"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    done.append("" if response.status < 400 else f"HTTP {response.status}")
            except urllib.error.HTTPError as e:
                done.append(f"HTTP {e.code}")
            except Exception as e:  # never leaves this thread; the reason is logged without the URL
                reason = getattr(e, "reason", e)
                late = isinstance(reason, TimeoutError)
                done.append(
                    f"no answer within {self.timeout:g} s" if late else str(reason) or type(e).__name__
                )

        thread = threading.Thread(target=send, name="heartbeat", daemon=True)
        thread.start()
        thread.join(self.timeout)
        why = done[0] if done else f"no answer within {self.timeout:g} s"
        if why:
            logger.warning("heartbeat ping {} failed: {}", suffix or "(success)", why)
        return not why

    def around(self, run: Callable[[], Report]) -> Report:
        """Run one pass between its pings; a crash pings `/fail` and propagates."""
        self.ping("/start")
        try:
            report = run()
        except Exception as e:
            self.ping("/fail", f"pass crashed: {e}")
            raise
        if report.ok:
            self.ping()
        else:
            self.ping("/fail", summary(report))
        return report


def wrap(url: Secret | None, run: Callable[[], Report]) -> Report:
    """`run()` with heartbeat pings when a URL is configured."""
    return Heartbeat(url.reveal()).around(run) if url else run()
