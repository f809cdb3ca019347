"""Metrics: recorded values show up as the right cr_agent_* series in the Prometheus text format."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import Metrics
from agent.model import Report, Result, Status


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def report(*statuses: Status) -> Report:
    return Report(
        tuple(Result(f"c{i}", f"r.example.com/ns/app{i}:latest", s) for i, s in enumerate(statuses))
    )


def test_render_returns_prometheus_text_and_its_content_type() -> None:
    """render() gives the text exposition format with prometheus_client's content type."""
    body, content_type = Metrics().render()
    assert content_type == CONTENT_TYPE_LATEST
    assert b"# TYPE cr_agent_passes_total counter" in body


def test_every_metric_name_is_prefixed_cr_agent() -> None:
    """Every family in the output is named cr_agent_*."""
    m = Metrics()
    m.record_pass(report(Status.UPDATED), 1.0)
    m.record_api("GetRepoTags", 0.1, "ok")
    m.record_hook("aliyun", "accepted")
    names = {f.name for f in text_string_to_metric_families(m.render()[0].decode())}
    assert names and all(n.startswith("cr_agent_") for n in names), names


def test_per_status_results_exist_at_zero_before_the_first_pass() -> None:
    """A fresh Metrics already exposes cr_agent_results_total{status=...} 0 for every status."""
    m = Metrics()
    for status in Status:
        assert value(m, "cr_agent_results_total", status=status.value) == 0.0
    assert value(m, "cr_agent_passes_total") == 0.0


def test_record_pass_counts_passes_results_updates_rollbacks_and_failures() -> None:
    """record_pass adds to passes, per-status results and the update/rollback/failure counters."""
    m = Metrics()
    m.record_pass(report(Status.UPDATED, Status.UPDATED, Status.UP_TO_DATE, Status.SKIPPED), 2.0)
    m.record_pass(report(Status.ROLLED_BACK, Status.FAILED, Status.UPDATED), 3.0)
    assert value(m, "cr_agent_passes_total") == 2.0
    assert value(m, "cr_agent_results_total", status="updated") == 3.0
    assert value(m, "cr_agent_results_total", status="up_to_date") == 1.0
    assert value(m, "cr_agent_results_total", status="skipped") == 1.0
    assert value(m, "cr_agent_results_total", status="rolled_back") == 1.0
    assert value(m, "cr_agent_results_total", status="failed") == 1.0
    assert value(m, "cr_agent_results_total", status="would_update") == 0.0
    assert value(m, "cr_agent_updates_total") == 3.0
    assert value(m, "cr_agent_rollbacks_total") == 1.0
    assert value(m, "cr_agent_failures_total") == 1.0


def test_record_pass_observes_the_duration_histogram() -> None:
    """Pass durations land in cr_agent_pass_duration_seconds with the right count, sum and buckets."""
    m = Metrics()
    m.record_pass(report(), 0.7)
    m.record_pass(report(), 45.0)
    assert value(m, "cr_agent_pass_duration_seconds_count") == 2.0
    assert value(m, "cr_agent_pass_duration_seconds_sum") == pytest.approx(45.7)
    assert value(m, "cr_agent_pass_duration_seconds_bucket", le="1.0") == 1.0
    assert value(m, "cr_agent_pass_duration_seconds_bucket", le="60.0") == 2.0
    assert value(m, "cr_agent_pass_duration_seconds_bucket", le="+Inf") == 2.0


def test_last_success_time_moves_only_on_an_ok_pass() -> None:
    """Last pass time is set by every pass; last success time only when report.ok; last_pass_ok follows."""
    m = Metrics()
    assert value(m, "cr_agent_last_success_timestamp_seconds") == 0.0
    before = time.time()
    m.record_pass(report(Status.UPDATED), 1.0)
    after = time.time()
    first_success = value(m, "cr_agent_last_success_timestamp_seconds")
    assert first_success is not None and before <= first_success <= after
    assert value(m, "cr_agent_last_pass_ok") == 1.0

    m.record_pass(report(Status.FAILED), 1.0)
    last_pass = value(m, "cr_agent_last_pass_timestamp_seconds")
    assert last_pass is not None and last_pass >= first_success
    assert value(m, "cr_agent_last_success_timestamp_seconds") == first_success
    assert value(m, "cr_agent_last_pass_ok") == 0.0


def test_record_api_counts_by_action_and_outcome_and_observes_latency_by_action() -> None:
    """record_api feeds cr_agent_api_requests_total{action,outcome} and the latency histogram {action}."""
    m = Metrics()
    m.record_api("GetRepoTags", 0.2, "ok")
    m.record_api("GetRepoTags", 0.3, "ok")
    m.record_api("GetRepoTags", 5.0, "error")
    m.record_api("ListRepoTag", 0.01, "ok")
    assert value(m, "cr_agent_api_requests_total", action="GetRepoTags", outcome="ok") == 2.0
    assert value(m, "cr_agent_api_requests_total", action="GetRepoTags", outcome="error") == 1.0
    assert value(m, "cr_agent_api_requests_total", action="ListRepoTag", outcome="ok") == 1.0
    assert value(m, "cr_agent_api_request_duration_seconds_count", action="GetRepoTags") == 3.0
    assert value(m, "cr_agent_api_request_duration_seconds_sum", action="GetRepoTags") == pytest.approx(5.5)
    assert value(m, "cr_agent_api_request_duration_seconds_bucket", action="GetRepoTags", le="0.25") == 1.0


def test_record_hook_counts_by_kind_and_outcome() -> None:
    """record_hook feeds cr_agent_webhook_requests_total{kind,outcome}."""
    m = Metrics()
    m.record_hook("aliyun", "accepted")
    m.record_hook("aliyun", "accepted")
    m.record_hook("aliyun", "unauthorized")
    m.record_hook("generic", "too_large")
    assert value(m, "cr_agent_webhook_requests_total", kind="aliyun", outcome="accepted") == 2.0
    assert value(m, "cr_agent_webhook_requests_total", kind="aliyun", outcome="unauthorized") == 1.0
    assert value(m, "cr_agent_webhook_requests_total", kind="generic", outcome="too_large") == 1.0


def test_each_instance_has_its_own_registry_and_leaves_the_global_one_alone() -> None:
    """Two Metrics objects do not share values, and nothing is registered in prometheus_client's REGISTRY."""
    a, b = Metrics(), Metrics()
    a.record_hook("generic", "accepted")
    assert value(a, "cr_agent_webhook_requests_total", kind="generic", outcome="accepted") == 1.0
    assert value(b, "cr_agent_webhook_requests_total", kind="generic", outcome="accepted") is None
    assert REGISTRY.get_sample_value("cr_agent_passes_total") is None


def test_record_pass_sets_each_containers_status_as_a_state_set() -> None:
    """cr_agent_container_status{container, status} is 1 for the container's last status, 0 for the others."""
    m = Metrics()
    m.record_pass(report(Status.UPDATED, Status.FAILED), 1.0)
    assert value(m, "cr_agent_container_status", container="c0", status="updated") == 1.0
    assert value(m, "cr_agent_container_status", container="c0", status="failed") == 0.0
    assert value(m, "cr_agent_container_status", container="c1", status="failed") == 1.0
    m.record_pass(report(Status.UP_TO_DATE, Status.UP_TO_DATE), 1.0)
    assert value(m, "cr_agent_container_status", container="c1", status="failed") == 0.0
    assert value(m, "cr_agent_container_status", container="c1", status="up_to_date") == 1.0


def test_container_info_carries_the_running_digest_and_drops_the_old_one() -> None:
    """The running digest is an info label: the new digest after an update, and only one series per container."""
    old, new = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    image = "r.example.com/ns/web:latest"
    m = Metrics()
    m.record_pass(Report((Result("web", image, Status.UP_TO_DATE, old, old),)), 1.0)
    assert value(m, "cr_agent_container_info", container="web", image=image, digest=old) == 1.0
    m.record_pass(Report((Result("web", image, Status.UPDATED, old, new),)), 1.0)
    info = {k: v for k, v in samples(m).items() if k[0] == "cr_agent_container_info"}
    assert info == {
        ("cr_agent_container_info", (("container", "web"), ("digest", new), ("image", image))): 1.0
    }
    m.record_pass(Report((Result("web", image, Status.ROLLED_BACK, new, old),)), 1.0)
    assert value(m, "cr_agent_container_info", container="web", image=image, digest=new) == 1.0


def test_write_textfile_writes_the_text_format_atomically(tmp_path: Path) -> None:
    """The textfile is the same exposition as /metrics, and no temporary file is left beside it."""
    directory = tmp_path
    m = Metrics()
    m.record_pass(report(Status.UPDATED), 2.0)
    m.record_api("GetRepoTag", 0.2, "ok")
    target = directory / "cr_agent.prom"
    m.write_textfile(target)
    text = target.read_text()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"cr_agent_last_pass_timestamp_seconds", "cr_agent_updates", "cr_agent_api_requests"} <= families
    assert [p.name for p in directory.iterdir()] == ["cr_agent.prom"]


# -- [metrics] in the config ----------------------------------------------------------------
_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"}
_WATCH = [{"container": "web", "image": "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"}]


def test_the_metrics_table_gives_a_listen_address_without_a_webhook() -> None:
    """`[metrics] listen` is parsed on its own: metrics and health without [webhook]."""
    from agent.config import parse

    cfg = parse({"watch": _WATCH, "metrics": {"listen": "127.0.0.1:9814"}}, _ENV)
    assert cfg.metrics is not None and cfg.metrics.listen == "127.0.0.1:9814"
    assert cfg.webhook is None
    assert parse({"watch": _WATCH}, _ENV).metrics is None


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({}, "metrics.listen: required"),
        ({"listen": "9814"}, "metrics.listen: expected host:port"),
        ({"listen": "127.0.0.1:99999"}, "metrics.listen: expected host:port"),
        ({"listen": "127.0.0.1:9814", "port": 1}, "metrics.port"),
    ],
)
def test_a_bad_metrics_table_is_named(table: dict[str, object], needle: str) -> None:
    from agent.config import parse
    from agent.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        parse({"watch": _WATCH, "metrics": table}, _ENV)
    assert any(needle in p for p in e.value.problems), e.value.problems
