"""The two listeners of `agent run`: the webhook ([webhook]) and the metrics listener ([metrics])."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from agent.config import Config, Match
from agent.errors import ConfigError
from agent.metrics import Metrics
from agent.secret import Secret
from agent.webhook.http import Limits, Server
from agent.webhook.listen import is_loopback, parse_listen
from agent.webhook.routes import HOOK, PROBE, Routes, StatusUI, Waker, WatchTarget
from agent.webhook.throttle import FailedAuth, parse_networks

SERVER_NAME = "cr-agent"
NO_TOKEN_HINT = (
    "the status page needs a token on a non-loopback address: set [metrics] token_env "
    "(see docs/status-page.md)"
)


class _Listener:
    """An http.Server with a name, a listen address and an error that names the address."""

    def __init__(self, what: str, listen: str, routes: Routes, limits: Limits) -> None:
        self._what = what
        self._host, self._port = parse_listen(listen, f"{what}.listen")
        self._server = Server(self._host, self._port, routes, limits, name=SERVER_NAME)
        self._started = False

    def start(self) -> None:
        """Bind, listen and serve in a daemon thread. Returns once the socket is listening."""
        if self._started:
            raise RuntimeError(f"a {self._what} server can be started only once")
        self._started = True
        try:
            self._server.start()
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {self._host}:{self._port}: {exc.strerror}") from exc
        host, port = self.address
        logger.bind(event="server.listening", server=self._what, host=host, port=port).info(
            "{}: listening on {}:{}", self._what, host, port
        )

    def stop(self) -> None:
        """Stop accepting, cut open connections and join the threads. Safe to call more than once."""
        self._server.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): with port 0 in `listen`, the port the OS chose."""
        return self._server.address


class WebhookServer(_Listener):
    """The ACR hook, the update API, /healthz and /metrics."""

    def __init__(
        self,
        listen: str,
        *,
        token: Secret,
        targets: Sequence[WatchTarget],
        waker: Waker,
        health: Callable[[], dict[str, object]],
        metrics: Metrics,
        match_tag: bool = False,
        discovering: bool = False,
        max_body: int = 64 * 1024,
        max_head: int = 16 * 1024,
        client_timeout: float = 10.0,
        max_clients: int = 16,
        max_connections: int = 256,
        max_per_ip: int = 32,
        ui: StatusUI | None = None,
        failed_auth: FailedAuth | None = None,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        limits = Limits(
            max_head=max_head,
            max_body=max_body,
            timeout=client_timeout,
            max_connections=max_connections,
            max_per_ip=max_per_ip,
            lanes={PROBE: 8, HOOK: max_clients},
        )
        host, _ = parse_listen(listen, "webhook.listen")
        routes = Routes(
            token=token, targets=targets, waker=waker, health=health, metrics=metrics, match_tag=match_tag,
            discovering=discovering, ui=ui, failed_auth=failed_auth,
            trusted_proxies=parse_networks(trusted_proxies), open_page=is_loopback(host),
        )  # fmt: skip
        super().__init__("webhook", listen, routes, limits)
        self.routes = routes


class MetricsServer(_Listener):
    """/metrics and /healthz only. On a loopback address /healthz shows the details without a token."""

    def __init__(
        self,
        listen: str,
        *,
        health: Callable[[], dict[str, object]],
        metrics: Metrics,
        token: Secret | None = None,
        page_token: Secret | None = None,
        ui: StatusUI | None = None,
        failed_auth: FailedAuth | None = None,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        host, _ = parse_listen(listen, "metrics.listen")
        routes = Routes(
            token=token, targets=(), waker=None, health=health, metrics=metrics,
            open_details=is_loopback(host), log_name="metrics", ui=ui, failed_auth=failed_auth,
            trusted_proxies=parse_networks(trusted_proxies), open_page=is_loopback(host),
            no_token_hint=NO_TOKEN_HINT, page_token=page_token,
        )  # fmt: skip
        super().__init__(
            "metrics", listen, routes, Limits(max_body=0, max_per_ip=16, lanes={PROBE: 8, HOOK: 1})
        )


def watch_targets(cfg: Config) -> list[WatchTarget]:
    """What the webhook matches a push against: each watch entry's repository, tag and pattern."""
    return [
        WatchTarget(w.container, w.image.namespace, w.image.name, w.image.tag, w.pattern) for w in cfg.watches
    ]


def start_listeners(
    cfg: Config,
    waker: Waker,
    health: Callable[[], dict[str, object]],
    metrics: Metrics,
    status: Callable[[], dict[str, Any]] | None = None,
) -> list[_Listener]:
    """Start the [webhook] and [metrics] listeners the config asks for; ConfigError if one cannot listen.

    `status` gives the status page's data (agent/ui); both listeners share one book of failed logins."""
    listeners: list[_Listener] = []
    failed = FailedAuth()
    ui = None
    if status is not None:
        from agent.ui.serve import StatusPage  # the page: only when a listener serves it

        ui = StatusPage(status, cfg.notify.language if cfg.notify else None)
    if cfg.webhook:
        listeners.append(
            WebhookServer(
                cfg.webhook.listen,
                token=cfg.webhook.token,
                targets=watch_targets(cfg),
                waker=waker,
                health=health,
                metrics=metrics,
                match_tag=cfg.webhook.match is Match.TAG,
                discovering=cfg.agent.discover is not None,
                ui=ui,
                failed_auth=failed,
                trusted_proxies=cfg.webhook.trusted_proxies,
            )
        )
    if cfg.metrics:
        m, webhook_token = cfg.metrics, cfg.webhook.token if cfg.webhook else None
        listeners.append(
            MetricsServer(
                m.listen,
                health=health,
                metrics=metrics,
                token=m.token or webhook_token,
                page_token=m.token,
                ui=ui,
                failed_auth=failed,
                trusted_proxies=m.trusted_proxies,
            )
        )
    started: list[_Listener] = []
    try:
        for listener in listeners:
            listener.start()
            started.append(listener)
    except OSError as e:
        for listener in started:
            listener.stop()
        section = "webhook" if isinstance(listeners[len(started)], WebhookServer) else "metrics"
        raise ConfigError([f"{section}.listen: {e.strerror or e}"]) from None
    return started
