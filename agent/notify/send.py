"""Notifications through apprise (DingTalk, WeCom, Feishu, Bark, e-mail, JSON webhooks, ...).

One message per pass, sent to every URL in parallel within `timeout`; a failing service is logged
by its number and scheme only (URLs carry tokens) and never breaks the pass.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from loguru import logger

from agent.config import NotifySettings
from agent.model import Report, Result, Status
from agent.notify.book import Notice, NoticeBook
from agent.notify.text import Item, body, item_for, title, trial_message
from agent.secret import redact

TIMEOUT = 10.0
MARKDOWN_SCHEMES = (
    "dingtalk",
    "feishu",
    "lark",
)  # their bots render Markdown; apprise sends the rest as text
logging.getLogger("apprise").addHandler(logging.NullHandler())  # its URLs carry tokens: we log ourselves
logging.getLogger("apprise").propagate = False


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "?"


def fingerprint(error: str | None) -> str:
    """A failure's reason without the numbers and ids that change from one try to the next."""
    return re.sub(r"[0-9a-fA-F]{8,}|\d+", "#", error or "")


class Notifier:
    def __init__(
        self,
        settings: NotifySettings,
        book: NoticeBook | None = None,
        *,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = TIMEOUT,
        sources: Sequence[Callable[[], list[Item]]] = (),
        agent: str = "agent",  # how the user runs the agent here: `docker exec NAME agent` in a container
    ) -> None:
        self.agent = agent
        self.settings = settings
        self.sources = list(sources)  # more to tell in the same message, e.g. ACR builds
        self.urls = [u.reveal() for u in settings.urls]
        self.book = book
        self.host = host or socket.gethostname()
        self.clock = clock
        self.timeout = timeout

    # what to tell
    def select(self, report: Report) -> list[Item]:
        """The items of a pass, with repeated failures held back until `repeat_after` and recoveries told once."""
        out = []
        for r in report.results:
            if r.status is Status.SKIPPED and r.signature in ("unsigned", "untrusted"):
                told = self._unsigned(r)
                out += [told] if told is not None else []
                continue
            item = item_for(r, self.settings.on)
            if self.book is not None:
                item = self._remember(r.container, r.status, r.error, r.image, item)
            if item is not None:
                out.append(item)
        return out

    def _unsigned(self, r: Result) -> Item | None:
        """A digest refused for its signature is told once (per digest and reason), not every pass."""
        if not {"skipped", "failed"} & set(self.settings.on):
            return None
        if self.book is not None:
            key, fp, now = f"unsigned:{r.container}", f"{r.to_digest} {r.signature}", self.clock()
            before = self.book.get(key)
            if before is not None and before.fingerprint == fp:
                return None
            self.book.put(key, Notice(fp, now, now))
        return Item("unsigned", r.container, r.image, r.current_digest, r.to_digest, reason=r.error)

    def _remember(
        self, name: str, status: Status, error: str | None, image: str, item: Item | None
    ) -> Item | None:
        assert self.book is not None
        key, now = f"fail:{name}", self.clock()
        before = self.book.get(key)
        if status is Status.FAILED:
            if item is None:
                return None
            fp = fingerprint(error)
            if before is None or before.fingerprint != fp:
                self.book.put(key, Notice(fp, now, now))
                return item
            if now - before.sent < self.settings.repeat_after:
                return None
            self.book.put(key, Notice(fp, before.first, now))
            return replace(item, since=time.strftime("%Y-%m-%d %H:%M", time.localtime(before.first)))
        if before is None or status is Status.SKIPPED:
            return item
        self.book.drop(key)
        if item is None and "recovered" in self.settings.on:
            return Item("recovered", name, image)
        return item

    # sending
    def on_pass(self, report: Report, seconds: float) -> None:
        """Send one message per pass with something to tell. Never raises."""
        try:
            items = self.select(report)
            for source in self.sources:
                items += source()
            if items:
                self.send(items, seconds)
        except Exception as e:  # telling must never break a pass
            logger.warning("notification failed: {}", type(e).__name__)

    def send(self, items: Sequence[Item], seconds: float | None = None) -> list[tuple[bool, str]]:
        lang, prefix = self.settings.language, self.settings.title_prefix
        head = title(self.host, items, lang, prefix)
        failure = any(it.kind in ("failed", "rolled_back", "build_failed", "build_stuck") for it in items)
        texts = {md: body(items, lang, md, seconds, self.agent) for md in (True, False)}
        outcome = self._deliver(head, texts, failure)
        if all(ok for ok, _ in outcome):
            logger.info("notification sent: {}", head)
        return outcome

    def test(self) -> list[tuple[bool, str]]:
        head, text = trial_message(self.host, self.settings.language, self.settings.title_prefix)
        return self._deliver(head, {True: text, False: text}, False)

    def _deliver(self, head: str, texts: dict[bool, str], failure: bool) -> list[tuple[bool, str]]:
        """Send to every URL in parallel; (ok, why) per URL, in order, within `timeout`."""
        results: list[tuple[bool, str] | None] = [None] * len(self.urls)
        head = redact(head)

        def one(i: int, url: str) -> None:
            try:
                results[i] = _send(url, head, redact(texts[scheme(url) in MARKDOWN_SCHEMES]), failure)
            except Exception as e:
                results[i] = (False, type(e).__name__)

        threads = [threading.Thread(target=one, args=(i, u), daemon=True) for i, u in enumerate(self.urls)]
        deadline = time.monotonic() + self.timeout
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        out = [r or (False, f"no answer within {self.timeout:g} s") for r in results]
        for i, (ok, why) in enumerate(out):
            if not ok:
                logger.warning("notification failed: URL #{} ({}://…): {}", i + 1, scheme(self.urls[i]), why)
        return out


def _send(url: str, head: str, text: str, failure: bool) -> tuple[bool, str]:
    import apprise

    ap = apprise.Apprise()
    if not ap.add(url):
        return False, "not a URL apprise knows"
    fmt = apprise.NotifyFormat.MARKDOWN if scheme(url) in MARKDOWN_SCHEMES else apprise.NotifyFormat.TEXT
    kind = apprise.NotifyType.FAILURE if failure else apprise.NotifyType.SUCCESS
    if ap.notify(title=head, body=text, notify_type=kind, body_format=fmt):
        return True, "sent"
    return False, "the service refused the message or could not be reached"
