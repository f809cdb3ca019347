"""The HTTP side of `agent run`: ACR's trigger webhook, the update API, /healthz and /metrics.

`http` is the HTTP/1.1 mechanics (no agent knowledge; with `messages`, `listen` and `lanes`), `routes` the
endpoints, `acr` the ACR payload parser, `server` the two listeners. See docs/webhook.md.
"""

from agent.webhook.listen import parse_listen
from agent.webhook.routes import Waker, WatchTarget
from agent.webhook.server import MetricsServer, WebhookServer

__all__ = ["MetricsServer", "Waker", "WatchTarget", "WebhookServer", "parse_listen"]
