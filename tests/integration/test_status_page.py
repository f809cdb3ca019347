"""The status page in a real browser: headless Chromium against a running `agent run` on the real engine.

The rows, states and versions are read from the DOM Chromium built (`--dump-dom`), after the page's
own script ran (a virtual-time budget lets its 10-s refresh fire once). An image whose version label
is markup must show as text. `UPDATE_SCREENSHOTS=1` copies the screenshots into docs/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import ROOT, World, world_fixture
from tests.integration.test_webhook_e2e import Daemon, start

XSS = "<img src=x onerror=alert(1)>"
CHROMIUM = shutil.which("chromium")
# Skipped on a developer's machine without it; in CI (CI=true, scripts/dev-env.sh installs it) it must run.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true", reason="needs Debian's chromium (scripts/dev-env.sh)"
)


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def chromium(url: str, *, lang: str, screenshot: Path | None = None, size: str = "1200,1000") -> str:
    """The DOM Chromium built for `url` (its scripts ran, 12 s of virtual time), or a screenshot.
    The page's console must hold no Content-Security-Policy refusal."""
    with tempfile.TemporaryDirectory(prefix="crt-chromium-") as profile:
        args = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--lang={lang}", f"--accept-lang={lang}", "--hide-scrollbars", "--enable-logging=stderr",
        ]  # fmt: skip
        if screenshot is None:
            args += ["--virtual-time-budget=12000", "--dump-dom", url]
        else:
            args += [f"--screenshot={screenshot}", f"--window-size={size}", "--virtual-time-budget=2000", url]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Content Security Policy" not in done.stderr and "Refused to" not in done.stderr, done.stderr[
        -2000:
    ]
    return done.stdout


class Rows(HTMLParser):
    """Per entry row (details[data-container]): its state, the text of its version, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.tags: list[str] = []
        self._row: str | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "details" and a.get("data-container"):
            self._row = str(a["data-container"])
            self.rows[self._row] = {"state": str(a.get("data-state")), "version": "", "label": ""}
        classes = (a.get("class") or "").split()
        if self._row and tag == "span" and ("version" in classes or "state" in classes):
            self._field = "version" if "version" in classes else "label"

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._field = None
        if tag == "details" and self._field is None:
            pass

    def handle_data(self, data: str) -> None:
        if self._row and self._field and not self.rows[self._row][self._field]:
            self.rows[self._row][self._field] = data.strip()


def parse(dom: str) -> Rows:
    rows = Rows()
    rows.feed(dom)
    return rows


def keep(shot: Path, name: str) -> None:
    assert shot.stat().st_size > 10_000, "an empty screenshot"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copy2(shot, ROOT / "docs" / name)


def page_url(d: Daemon, query: str = "") -> str:
    return f"http://127.0.0.1:{d.port}/{query}"


def test_pending_update_versions_and_a_markup_label_as_text_in_english(world: World, tmp_path: Path) -> None:
    labels = {"org.opencontainers.image.version": "1.4.2", "org.opencontainers.image.revision": "9f3c2e1a7b"}
    world.push_image("v1", labels=labels)
    world.run("app")
    world.push_image("v1", repo="evil", labels={"org.opencontainers.image.version": XSS})
    world.run("evil", repo="evil")
    world.push_image("v2", labels={**labels, "org.opencontainers.image.version": "1.5.0"})
    watches = [
        {"container": "app", "image": world.image(), "mode": "notify"},
        {"container": "evil", "image": world.image("evil")},
    ]
    d = start(world, watches, log_level="DEBUG")
    app, evil = world.prefix + "app", world.prefix + "evil"

    dom = chromium(page_url(d), lang="en-US")
    assert "GET /?fragment=1 " in d.log()  # the page's own script refreshed its live part, CSP and all
    rows = parse(dom)
    assert rows.rows[app] == {"state": "pending", "version": "1.4.2", "label": "update pending"}, rows.rows
    assert rows.rows[evil]["state"] == "up_to_date" and rows.rows[evil]["label"] == "up to date"
    assert rows.rows[evil]["version"] == XSS  # the label's characters, as text
    assert "img" not in rows.tags and "Agent" in dom and "Last 30 days" in dom
    assert 'data-generated="' in dom and "/ui/refresh.js" in dom
    assert d.token not in dom

    shot = tmp_path / "pending.png"
    chromium(page_url(d), lang="en-US", screenshot=shot, size="1200,820")
    keep(shot, "status-page-pending.png")
    phone = tmp_path / "phone.png"
    chromium(page_url(d, f"?open={app}"), lang="en-US", screenshot=phone, size="390,844")
    keep(phone, "status-page-phone.png")
    d.stop()


def test_after_a_rollback_in_chinese_with_the_failed_containers_logs(world: World, tmp_path: Path) -> None:
    world.push_image("v1", labels={"org.opencontainers.image.version": "2.0.0"})
    world.run("api")
    d = start(world, [{"container": "api", "image": world.image(), "min_uptime": "2s"}])
    crash = ["sh", "-c", "echo 'v2 starting'; echo 'error: cannot reach db:5432'; exit 3"]
    world.push_image("v2", labels={"org.opencontainers.image.version": "2.1.0"}, cmd=crash)
    api = world.prefix + "api"
    assert d.update(api).status == 202
    h = d.wait_passes(2, 120)
    assert h["last_pass"]["results"] == {api: "rolled_back"}, h

    dom = chromium(page_url(d, f"?open={api}"), lang="zh-CN")
    rows = parse(dom)
    assert rows.rows[api] == {"state": "rolled_back", "version": "2.0.0", "label": "已回滚"}, rows.rows
    assert "最近 30 天" in dom and "历史" in dom
    assert "error: cannot reach db:5432" in dom  # the failed container's last log lines, kept
    assert "<rect" in dom  # the rollback on the timeline

    shot = tmp_path / "rollback.png"
    chromium(page_url(d, f"?open={api}"), lang="zh-CN", screenshot=shot, size="1200,900")
    keep(shot, "status-page-rollback.png")
    d.stop()
