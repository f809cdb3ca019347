"""Prometheus metrics, in a registry of their own (never the process-global one).

Every name starts with `cr_agent_`. Label values come from small fixed sets (statuses,
ACR API actions, webhook kinds and outcomes), never from user input, so the number of
series stays bounded.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from agent.model import Report, Status

# A pass may pull images and wait for health checks: seconds to many minutes.
_PASS_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))
# One ACR OpenAPI call: milliseconds to the SDK's timeout.
_API_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))


class Metrics:
    """The agent's counters, gauges and histograms. Thread-safe: any thread may record."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._passes = Counter("cr_agent_passes", "Reconcile passes completed.", registry=r)
        self._results = Counter(
            "cr_agent_results",
            "Per-container results of reconcile passes, by status.",
            ["status"],
            registry=r,
        )
        self._updates = Counter("cr_agent_updates", "Containers replaced with a new image.", registry=r)
        self._rollbacks = Counter(
            "cr_agent_rollbacks",
            "Replacements that failed and were rolled back to the old container.",
            registry=r,
        )
        self._failures = Counter(
            "cr_agent_failures",
            "Per-container failures (check or replacement failed, not rolled back).",
            registry=r,
        )
        self._pass_seconds = Histogram(
            "cr_agent_pass_duration_seconds",
            "Wall time of one reconcile pass.",
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self._last_pass = Gauge(
            "cr_agent_last_pass_timestamp_seconds", "Unix time the last reconcile pass ended.", registry=r
        )
        self._last_success = Gauge(
            "cr_agent_last_success_timestamp_seconds",
            "Unix time the last pass with no failed or rolled-back container ended.",
            registry=r,
        )
        self._last_ok = Gauge(
            "cr_agent_last_pass_ok",
            "1 if the last pass had no failed or rolled-back container, else 0.",
            registry=r,
        )
        self._api = Counter(
            "cr_agent_api_requests",
            "ACR OpenAPI requests, by action and outcome.",
            ["action", "outcome"],
            registry=r,
        )
        self._api_seconds = Histogram(
            "cr_agent_api_request_duration_seconds",
            "Latency of ACR OpenAPI requests, by action.",
            ["action"],
            buckets=_API_BUCKETS,
            registry=r,
        )
        self._hooks = Counter(
            "cr_agent_webhook_requests",
            "Webhook requests by kind (aliyun, generic; unknown when refused before routing) and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        # Pre-create the per-status series so a dashboard sees 0, not "no data", before the first pass.
        for status in Status:
            self._results.labels(status=status.value)

    def record_pass(self, report: Report, seconds: float) -> None:
        """Count one finished pass: its per-container results, duration and end time."""
        now = time.time()
        self._passes.inc()
        for result in report.results:
            self._results.labels(status=result.status.value).inc()
        self._updates.inc(report.count(Status.UPDATED))
        self._rollbacks.inc(report.count(Status.ROLLED_BACK))
        self._failures.inc(report.count(Status.FAILED))
        self._pass_seconds.observe(max(0.0, seconds))
        self._last_pass.set(now)
        self._last_ok.set(1 if report.ok else 0)
        if report.ok:
            self._last_success.set(now)

    def record_api(self, action: str, seconds: float, outcome: str) -> None:
        """Count one ACR API request (`outcome`: e.g. ok, error, throttled) and observe its latency."""
        self._api.labels(action=action, outcome=outcome).inc()
        self._api_seconds.labels(action=action).observe(max(0.0, seconds))

    def record_hook(self, kind: str, outcome: str) -> None:
        """Count one webhook request. `kind`: aliyun | generic | unknown; `outcome`: accepted, ignored, ..."""
        self._hooks.labels(kind=kind, outcome=outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
