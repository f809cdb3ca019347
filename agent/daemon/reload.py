"""SIGHUP in `agent run`: read and check the config file again, and swap it in between passes.

A file that `agent check` would refuse changes nothing: every problem is logged and the running
config stays. A good one is swapped in while no pass runs (under the run lock), with a line saying
what changed. `state_dir`, [webhook] and [metrics] (open sockets, the lock) take effect at the next
restart; the entries a hook can wake follow the reload at once.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from loguru import logger

from agent.config import Config, load
from agent.config.secretfiles import warnings
from agent.daemon.schedule import describe
from agent.errors import ConfigError
from agent.webhook.server import WebhookServer, watch_targets

if TYPE_CHECKING:
    from agent.daemon import Daemon


def reload(daemon: Daemon) -> bool:
    """Read `daemon.cfg.path` again; swap it in between passes. False if it was refused or stopped."""
    path, coord = daemon.cfg.path, daemon.coord
    assert coord is not None
    if path is None:
        logger.warning("SIGHUP: the config was not read from a file; nothing to reload")
        return False
    try:
        new = load(path)
    except ConfigError as e:
        logger.bind(event="config.invalid", problems=len(e.problems)).error(
            "SIGHUP: {} was not reloaded, the running config stays: {}", path, e
        )
        return False
    for warning in warnings(path):
        logger.warning("{}", warning)
    done: list[bool] = []
    coord.between_passes(lambda: done.append(_swap(daemon, new)), "config reload")
    return bool(done and done[0])


def _swap(daemon: Daemon, new: Config) -> bool:
    old = daemon.cfg
    later = [
        name
        for name, a, b in (
            ("state_dir", old.agent.state_dir, new.agent.state_dir),
            ("[webhook]", old.webhook, new.webhook),
            ("[metrics]", old.metrics, new.metrics),
        )
        if a != b
    ]
    if later:  # what the process holds open keeps its running value until a restart
        new = dataclasses.replace(
            new,
            agent=dataclasses.replace(new.agent, state_dir=old.agent.state_dir),
            webhook=old.webhook,
            metrics=old.metrics,
        )
    try:
        ctx = daemon._build(new, stop=daemon.stop_event, metrics=daemon._metrics)
    except Exception as e:  # e.g. a registry client that cannot be made: keep what runs
        logger.error("SIGHUP: the new config cannot be used, the running config stays: {}", e)
        return False
    previous, daemon._ctx, daemon.cfg = daemon._ctx, ctx, new
    if previous is not None:
        previous.state.close()
    if new.agent.schedule != old.agent.schedule and daemon.ticker is not None:
        daemon.ticker.reschedule(new.agent.schedule)
    for server in daemon._servers:
        if isinstance(server, WebhookServer):
            server.routes.retarget(watch_targets(new), new.agent.discover is not None)
    said = changes(old, new)
    logger.bind(event="config.reloaded").info(
        "SIGHUP: {} reloaded: {}", new.path, "; ".join(said) if said else "nothing changed"
    )
    for name in later:
        logger.warning("SIGHUP: {} changed: takes effect at the next restart", name)
    return True


def changes(old: Config, new: Config) -> list[str]:
    """What a reload changes, in words: entries added, removed or changed, the schedule, other sections."""
    before = {w.container: w for w in old.watches}
    after = {w.container: w for w in new.watches}
    out = []
    for what, names in (
        ("added", sorted(after.keys() - before.keys())),
        ("removed", sorted(before.keys() - after.keys())),
        ("changed", sorted(n for n in after.keys() & before.keys() if after[n] != before[n])),
    ):
        if names:
            out.append(f"entries {what}: {', '.join(names)}")
    if old.agent.schedule != new.agent.schedule:
        out.append(f"schedule: {describe(old.agent.schedule)} → {describe(new.agent.schedule)}")
    settings = [f.name for f in dataclasses.fields(old.agent) if f.name not in ("schedule", "state_dir")]
    out += [f"agent.{n} changed" for n in settings if getattr(old.agent, n) != getattr(new.agent, n)]
    sections = ("aliyun", "registry_auth", "notify", "build_watch")
    out += [f"[{n}] changed" for n in sections if getattr(old, n) != getattr(new, n)]
    return out
