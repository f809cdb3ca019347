"""The status page and /api/status: who may read them (open, 401, 403, 429) and that a load asks no engine."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from agent.cli.commands import main
from agent.config import parse
from agent.deploy import Deployer
from agent.metrics import Metrics
from agent.reconcile.context import Context
from agent.reconcile.run import reconcile
from agent.reconcile.seen import seen_of
from agent.secret import Secret
from agent.state import State
from agent.ui.serve import StatusPage
from agent.ui.snapshot import entries, snapshot, with_problems
from agent.webhook.messages import Reply, Request
from agent.webhook.routes import Routes
from agent.webhook.throttle import FailedAuth
from tests.support.fakes import FakeRegistry, FakeRuntime

TOKEN = "p" * 40
IMAGE = "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


class FakeUI:
    def __init__(self) -> None:
        self.served = 0

    def answer(self, request: Request) -> Reply:
        self.served += 1
        return Reply(200, b"page", content_type="text/html")


def routes(
    *, token: str | None = TOKEN, page_token: object = True, open_page: bool = False, **kw: object
) -> Routes:
    return Routes(
        token=Secret(token) if token else None, targets=(), waker=None, health=lambda: {"passes": 1},
        metrics=Metrics(), ui=FakeUI(), open_page=open_page, page_token=page_token,  # type: ignore[arg-type]
        no_token_hint="set [metrics] token_env", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def get(r: Routes, path: str, peer: str = "10.1.2.3", **headers: str) -> Reply | None:
    """The early answer (None: the request is let through to the page)."""
    head = Request("GET", path, tuple((k.lower().replace("_", "-"), v) for k, v in headers.items()), peer)
    return r.route(head).early


def basic(password: str, user: str = "anyone") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_on_a_loopback_listener_the_page_is_open() -> None:
    r = routes(open_page=True)
    assert get(r, "/") is None and get(r, "/api/status") is None


def test_elsewhere_the_right_token_opens_it_as_a_basic_password_with_any_user_or_as_bearer() -> None:
    r = routes()
    for auth in (basic(TOKEN), basic(TOKEN, user=""), basic(TOKEN, "root"), f"Bearer {TOKEN}"):
        assert get(r, "/", authorization=auth) is None
        assert get(r, "/api/status", authorization=auth) is None


def test_a_missing_or_wrong_token_gets_401_with_no_detail_and_a_basic_challenge() -> None:
    r = routes()
    for auth in (None, basic("wrong"), f"Bearer {TOKEN[:-1]}", "Basic !!notbase64", basic(TOKEN[:-1] + "q")):
        reply = get(r, "/api/status", **({"authorization": auth} if auth else {}))
        assert reply is not None and reply.status == 401
        assert json.loads(reply.body) == {"error": "unauthorized"}
        assert ("WWW-Authenticate", 'Basic realm="cr-agent", charset="UTF-8"') in reply.headers


def test_a_metrics_listener_without_its_token_answers_403_with_a_hint_and_keeps_metrics_and_liveness() -> (
    None
):
    r = routes(token=None, page_token=None)
    for path in ("/", "/api/status"):
        reply = get(r, path, authorization=basic(TOKEN))
        assert reply is not None and reply.status == 403 and b"token_env" in reply.body
    assert get(r, "/metrics") is None and get(r, "/healthz") is None
    # the webhook's token still shows /healthz details on that listener, as before; it opens no page
    r = routes(token=TOKEN, page_token=None)
    reply = get(r, "/", authorization=basic(TOKEN))
    assert reply is not None and reply.status == 403


def test_ten_wrong_tokens_a_minute_get_429_with_retry_after_and_other_addresses_are_not_affected() -> None:
    r = routes()
    for _ in range(10):
        reply = get(r, "/", peer="10.9.9.9", authorization=basic("guess"))
        assert reply is not None and reply.status == 401
    blocked = get(r, "/", peer="10.9.9.9", authorization=basic(TOKEN))  # even the right token now
    assert blocked is not None and blocked.status == 429
    assert 0 < int(dict(blocked.headers)["Retry-After"]) <= 60
    assert get(r, "/metrics", peer="10.9.9.9") is not None  # the blocked address gets nothing there either
    assert get(r, "/", peer="10.7.7.7", authorization=basic(TOKEN)) is None  # another client: served
    assert get(r, "/healthz", peer="10.9.9.9") is None  # liveness without a token stays open


def test_wrong_hook_and_update_tokens_count_too() -> None:
    r = Routes(token=Secret(TOKEN), targets=(), waker=lambda *_: None, health=dict, metrics=Metrics())  # type: ignore[arg-type]
    for i in range(10):
        path = "/hooks/aliyun/guess" if i % 2 else "/v1/update"
        head = Request("POST", path, (("authorization", "Bearer guess"),), "10.3.3.3")
        early = r.route(head).early
        assert early is not None and early.status in (401, 404)
    for path in ("/hooks/aliyun/" + TOKEN, "/v1/update"):
        head = Request("POST", path, (("authorization", f"Bearer {TOKEN}"),), "10.3.3.3")
        early = r.route(head).early
        assert early is not None and early.status == 429
    head = Request("POST", "/v1/update", (("authorization", f"Bearer {TOKEN}"),), "10.4.4.4")
    assert r.route(head).early is None


def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() -> None:
    from agent.webhook.throttle import parse_networks

    r = routes(trusted_proxies=parse_networks(["10.0.0.0/24"]))
    for _ in range(10):
        get(r, "/", peer="10.0.0.2", x_forwarded_for="198.51.100.7, 10.0.0.9", authorization=basic("x"))
    blocked = get(r, "/", peer="10.0.0.2", x_forwarded_for="198.51.100.7", authorization=basic(TOKEN))
    assert blocked is not None and blocked.status == 429
    assert get(r, "/", peer="10.0.0.2", x_forwarded_for="203.0.113.5", authorization=basic(TOKEN)) is None
    # from an address that is no trusted proxy, the header is ignored: the peer itself is counted
    r = routes(trusted_proxies=parse_networks(["10.0.0.0/24"]))
    for i in range(10):
        get(r, "/", peer="192.0.2.1", x_forwarded_for=f"203.0.113.{i}", authorization=basic("x"))
    blocked = get(r, "/", peer="192.0.2.1", x_forwarded_for="203.0.113.77", authorization=basic(TOKEN))
    assert blocked is not None and blocked.status == 429


def test_the_back_off_grows_with_each_block_and_the_book_stays_bounded() -> None:
    now = [0.0]
    book = FailedAuth(limit=10, window=60, base=60, cap=3600, max_keys=100, clock=lambda: now[0])
    blocks = []
    for _ in range(4):
        for _ in range(10):
            book.failed("a")
        blocks.append(book.blocked("a"))
        now[0] += blocks[-1] + 1
    assert blocks == [60, 120, 240, 480]
    for i in range(1000):
        book.failed(f"x{i}")
    assert len(book._book) <= 100


@pytest.fixture
def world(tmp_path: Path) -> tuple[object, State, FakeRuntime, FakeRegistry]:
    cfg = parse(
        {"agent": {"state_dir": str(tmp_path), "mode": "notify"}, "watch": [{"container": "web", "image": IMAGE}]},
        {"ALIBABA_CLOUD_ACCESS_KEY_ID": "i", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s",
         "ALIYUN_ACCESS_KEY_ID": "i", "ALIYUN_ACCESS_KEY_SECRET": "s"},
    )  # fmt: skip
    rt = FakeRuntime()
    rt.add("web", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    reg = FakeRegistry({"ns/web": {"latest": B}})
    state = State(tmp_path)
    reconcile(Context(cfg, {"aliyun": reg}, rt, state, Deployer(rt, state)))
    return cfg, state, rt, reg


def test_a_page_load_asks_neither_docker_nor_the_registry(world: tuple) -> None:  # type: ignore[type-arg]
    cfg, state, rt, reg = world
    engine_calls, registry_calls = sum(rt.calls.values()), len(reg.calls)
    page = StatusPage(lambda: snapshot(cfg, state, {"version": "t", "uptime": 1.0}), "en")
    for _ in range(50):
        for path in ("/", "/api/status", "/?fragment=1"):
            assert page.answer(Request("GET", path, (), "127.0.0.1")).status == 200
    assert sum(rt.calls.values()) == engine_calls and len(reg.calls) == registry_calls
    data = json.loads(page.answer(Request("GET", "/api/status", (), "127.0.0.1")).body)
    (web,) = data["containers"]
    assert (
        web["state"] == "pending" and web["running_digest"] == A and web["last_check"]["latest_digest"] == B
    )
    html = page.answer(Request("GET", "/", (), "127.0.0.1")).body.decode()
    assert "update pending" in html and "web" in html


def test_api_status_has_the_shape_of_agent_status_json(world: tuple) -> None:  # type: ignore[type-arg]
    cfg, state, rt, _ = world
    (w,) = cfg.watches
    by_name = {w.container: w for w in cfg.watches}
    live = with_problems(entries([seen_of(w, rt.inspect("web"), None)], state, {}, cfg, by_name), by_name, ())
    recorded = snapshot(cfg, state, None)
    assert set(recorded["containers"][0]) == set(live[0])  # what `agent status --json` builds, live
    assert set(recorded) == {"ok", "containers", "events", "generated"}


def test_check_refuses_a_webhook_token_under_32_characters_with_a_command_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\nstate_dir = "{tmp_path}"\ndiscover = "labels"\n[webhook]\nlisten = "0.0.0.0:7023"\ntoken = "{"t" * 31}"\n'
    )
    assert main(["check", "--config-only", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "webhook.token: 31 characters" in err and "secrets.token_urlsafe(32)" in err
    from agent.config import load, weak_tokens

    path.write_text(path.read_text().replace("t" * 31, "t" * 32))
    assert weak_tokens(load(path)) == []


def test_version_labels_are_read_as_printable_text_only() -> None:
    from agent.model import Version

    labels = {"org.opencontainers.image.version": "1.2\x1b[31m.3", "org.opencontainers.image.revision": ""}
    assert Version.from_labels(labels) == Version("1.2[31m.3", None)
    assert Version.from_labels({"org.opencontainers.image.version": "v" * 500}) == Version("v" * 200)
    assert Version.from_labels(None) is None


def test_an_older_state_db_gains_the_logs_column_and_the_seen_table(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "state.db")
    db.execute(
        "CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, container TEXT NOT NULL, started REAL NOT NULL,"
        " finished REAL NOT NULL, from_digest TEXT, to_digest TEXT, outcome TEXT NOT NULL, error TEXT,"
        " image_id TEXT, old_image_id TEXT)"
    )
    db.execute("INSERT INTO history VALUES (1, 'web', 1.0, 2.0, 'a', 'b', 'rolled_back', 'boom', NULL, NULL)")
    db.commit()
    db.close()
    state = State(tmp_path)
    state.keep_logs("web", "last line")
    (d,) = state.history("web")
    assert d.as_json()["logs"] == "last line" and d.outcome == "rolled_back"
    state.record_seen({"web": {"container": "web"}}, complete=True)
    assert state.seen()["web"][1] == {"container": "web"}
    t = state.seen()["web"][0]
    state.record_seen({"web": {"container": "web"}, "api": {"container": "api"}}, complete=False)
    assert state.seen()["web"][0] == t and set(state.seen()) == {"web", "api"}  # unchanged: not rewritten
    state.record_seen({"api": {"container": "api"}}, complete=True)
    assert set(state.seen()) == {"api"}


@pytest.mark.parametrize(
    ("header", "lang"),
    [(None, "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("en-US,en;q=0.9,zh;q=0.8", "en"),
     ("fr-FR, zh-TW;q=0.5", "zh"), ("de, en;q=0", "en"), ("en;q=0.3, zh;q=0.7", "zh"), ("zh;q=abc", "en")],
)  # fmt: skip
def test_the_language_is_the_first_of_zh_and_en_the_browser_prefers(header: str | None, lang: str) -> None:
    from agent.ui.words import from_accept_language

    assert from_accept_language(header) == lang


def test_notify_language_wins_over_the_browser(world: tuple) -> None:  # type: ignore[type-arg]
    cfg, state, _, _ = world
    page = StatusPage(lambda: snapshot(cfg, state, None), "zh")
    html = page.answer(Request("GET", "/", (("accept-language", "en-US"),), "127.0.0.1")).body.decode()
    assert "有更新待处理" in html and 'lang="zh-CN"' in html


def test_the_agent_part_shows_the_acr_builds_the_build_watch_told_of(world: tuple) -> None:  # type: ignore[type-arg]
    import time

    from agent.notify.book import Notice, NoticeBook

    cfg, state, _, _ = world
    book = NoticeBook(cfg.agent.state_dir)
    now = time.time()
    book.put("build:ns/web:b-17:failed", Notice("FAILED", now - 60, now - 60))
    book.put("fail:web", Notice("x", now, now))  # a failing entry is no build alert
    book.put("build:ns/old:b-1:failed", Notice("FAILED", now - 40 * 86400, now - 40 * 86400))  # too old
    data = snapshot(cfg, state, {"version": "t"})
    assert [(a["build"], a["state"]) for a in data["agent"]["build_alerts"]] == [
        ("ns/web:b-17:failed", "FAILED")
    ]
    html = StatusPage(lambda: data, "en").answer(Request("GET", "/", (), "127.0.0.1")).body.decode()
    assert "ns/web:b-17:failed" in html
