"""The health gate: the new container proves itself, or the replacement is undone."""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from agent.config import HealthSpec, Watch
from agent.errors import Disturbed, HealthFailed, Interrupted
from agent.runtimes import Runtime

TELL_EVERY = 10.0  # seconds between "still waiting" lines


def _how(w: Watch) -> str:
    if w.health is not None:
        return f"its HEALTHCHECK, else probe {w.health.http or w.health.tcp}"
    return f"its HEALTHCHECK, else running for {w.min_uptime:g}s"


def wait_healthy(
    rt: Runtime,
    w: Watch,
    new_id: str,
    *,
    probe: Callable[[HealthSpec], tuple[bool, str]],
    clock: Callable[[], float],
    stop: threading.Event,
    poll: float,
) -> None:
    """Return once the new container is proven; raise HealthFailed, Interrupted or Disturbed."""
    deadline = clock() + w.health_timeout
    logger.bind(event="replace.step", step="health_wait").info(
        "{}: waiting for the new container to prove itself ({}), up to {:g}s",
        w.container,
        _how(w),
        w.health_timeout,
    )
    told = clock()
    first = rt.state(new_id)
    restarts = first.restart_count if first else 0
    up_since = clock()
    last_probe = "no probe yet"
    interval = w.health.interval if w.health else poll
    while True:
        st = rt.state(new_id)
        if st is None or st.status == "removing":  # someone else removes it: not the image's fault
            raise Disturbed("the new container was removed by someone else during its health gate")
        if st.restarting or st.restart_count > restarts:
            raise HealthFailed(f"the new container restarted (exit code {st.exit_code})")
        if not st.running:
            raise HealthFailed(f"the new container exited with code {st.exit_code}")
        if st.health is not None:
            if st.health == "healthy":
                return
            if st.health == "unhealthy":
                raise HealthFailed("the new container's HEALTHCHECK reports unhealthy")
            last_probe = f"HEALTHCHECK {st.health}"
        elif w.health is not None:
            ok, last_probe = probe(w.health)
            if ok:
                return
        elif clock() - up_since >= w.min_uptime:
            return
        if clock() >= deadline:
            raise HealthFailed(f"not healthy within {w.health_timeout:g}s ({last_probe})")
        if clock() - told >= TELL_EVERY:
            told = clock()
            logger.bind(event="replace.step", step="health_wait").info(
                "{}: still waiting for health ({}); {:.0f}s left", w.container, last_probe, deadline - told
            )
        if stop.wait(min(interval, max(0.05, deadline - clock()))):
            raise Interrupted("shutdown requested while waiting for the new container to be healthy")
