"""Prometheus metrics, in a registry of their own (never the process-global one).

Every name starts with `cr_agent_`. Label values come from small fixed sets (statuses,
ACR API actions, webhook kinds and outcomes) or from the config (container names, images, one
running digest per container), never from request input, so the number of series stays bounded.
`agent once --metrics-file` writes them for node_exporter's textfile collector.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    write_to_textfile,
)

from agent.model import Report, Status

_M = TypeVar("_M", Counter, Gauge, Histogram)
_HELP = {
    "cr_agent_passes": "Reconcile passes completed.",
    "cr_agent_results": "Per-container results of reconcile passes, by status.",
    "cr_agent_updates": "Containers replaced with a new image.",
    "cr_agent_rollbacks": "Replacements that failed and were rolled back to the old container.",
    "cr_agent_failures": "Per-container failures (check or replacement failed, not rolled back).",
    "cr_agent_pass_duration_seconds": "Wall time of one reconcile pass.",
    "cr_agent_last_pass_timestamp_seconds": "Unix time the last reconcile pass ended.",
    "cr_agent_last_success_timestamp_seconds": "Unix time the last pass with no failed or rolled-back "
    "container ended.",
    "cr_agent_last_pass_ok": "1 if the last pass had no failed or rolled-back container, else 0.",
    "cr_agent_api_requests": "ACR OpenAPI requests, by action and outcome.",
    "cr_agent_api_request_duration_seconds": "Latency of ACR OpenAPI requests, by action.",
    "cr_agent_webhook_requests": "Webhook requests by kind (aliyun, generic; unknown when refused before "
    "routing) and outcome.",
    "cr_agent_container_status": "1 for the status of each watched container in the last pass, 0 for the "
    "other statuses.",
    "cr_agent_container_info": "Always 1; labels: the image a container follows and the digest it runs "
    "after the last pass.",
}

# A pass may pull images and wait for health checks: seconds to many minutes.
_PASS_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))
# One ACR OpenAPI call: milliseconds to the SDK's timeout.
_API_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))


class Metrics:
    """The agent's counters, gauges and histograms. Thread-safe: any thread may record."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._passes = self._make(Counter, "cr_agent_passes")
        self._results = self._make(Counter, "cr_agent_results", "status")
        self._updates = self._make(Counter, "cr_agent_updates")
        self._rollbacks = self._make(Counter, "cr_agent_rollbacks")
        self._failures = self._make(Counter, "cr_agent_failures")
        self._pass_seconds = self._make(Histogram, "cr_agent_pass_duration_seconds", buckets=_PASS_BUCKETS)
        self._last_pass = self._make(Gauge, "cr_agent_last_pass_timestamp_seconds")
        self._last_success = self._make(Gauge, "cr_agent_last_success_timestamp_seconds")
        self._last_ok = self._make(Gauge, "cr_agent_last_pass_ok")
        self._api = self._make(Counter, "cr_agent_api_requests", "action", "outcome")
        self._api_seconds = self._make(
            Histogram, "cr_agent_api_request_duration_seconds", "action", buckets=_API_BUCKETS
        )
        self._hooks = self._make(Counter, "cr_agent_webhook_requests", "kind", "outcome")
        self._status = self._make(Gauge, "cr_agent_container_status", "container", "status")
        self._info = self._make(Gauge, "cr_agent_container_info", "container", "image", "digest")
        self._info_labels: dict[str, tuple[str, str, str]] = {}
        # Pre-create the per-status series so a dashboard sees 0, not "no data", before the first pass.
        for status in Status:
            self._results.labels(status=status.value)

    def _make(self, kind: type[_M], name: str, *labels: str, **more: Any) -> _M:
        """A metric in this registry, with its help text from _HELP and the label names `labels`."""
        return kind(name, _HELP[name], labels, registry=self.registry, **more)

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
        for result in report.results:
            for status in Status:
                self._status.labels(container=result.container, status=status.value).set(
                    1 if status == result.status else 0
                )
            running = result.to_digest if result.status == Status.UPDATED else result.current_digest
            self._set_info(result.container, result.image, running or "")

    def _set_info(self, container: str, image: str, digest: str) -> None:
        labels = (container, image, digest)
        old = self._info_labels.get(container)
        if old is not None and old != labels:
            self._info.remove(*old)
        self._info_labels[container] = labels
        self._info.labels(*labels).set(1)

    def record_api(self, action: str, seconds: float, outcome: str) -> None:
        """Count one ACR API request (`outcome`: e.g. ok, error, throttled) and observe its latency."""
        self._api.labels(action=action, outcome=outcome).inc()
        self._api_seconds.labels(action=action).observe(max(0.0, seconds))

    def record_hook(self, kind: str, outcome: str) -> None:
        """Count one webhook request. `kind`: aliyun | generic | unknown; `outcome`: accepted, ignored, ..."""
        self._hooks.labels(kind=kind, outcome=outcome).inc()

    def write_textfile(self, path: Path) -> None:
        """Write the text format to `path` atomically (a temporary file, then a rename), as node_exporter's
        textfile collector wants: it never reads a half-written file."""
        write_to_textfile(str(path), self.registry)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
