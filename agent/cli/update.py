"""`agent update NAME`: the safe replace for one entry now, as WUD's manual trigger does.

It runs the same pass as `agent once`, limited to that entry and with its mode set to "update" (so it
works in `mode = "notify"`). A pin, a quarantined digest or a missing trusted signature is respected unless
`--force`, which unpins the entry and lifts its quarantine first (else the next pass would go back to the pin)
and deploys without a signature.
"""

from __future__ import annotations

from dataclasses import replace

from loguru import logger

from agent import app
from agent.config import Config, Watch
from agent.model import Report
from agent.reconcile.run import reconcile
from agent.runlock import RunLock


def one_entry(cfg: Config, watch: Watch) -> Config:
    """A config holding only `watch`, in mode "update", without label discovery (it is already found)."""
    agent = replace(cfg.agent, discover=None, mode="update")
    return replace(cfg, agent=agent, watches=(replace(watch, mode="update"),))


def update_one(cfg: Config, watch: Watch, *, force: bool, dry_run: bool) -> Report:

    name = watch.container
    only = frozenset({name})
    single = one_entry(cfg, watch)
    if dry_run:
        _explain(single, name, force)
        return reconcile(app.build_context(single), only=only, dry_run=True)
    with RunLock(cfg.agent.state_dir / "agent.lock"):
        ctx = app.build_context(single)
        if force:
            pin = ctx.state.pinned(name)
            if pin and ctx.state.unpin(name):
                logger.info("{}: --force: unpinned from {}, following the tag again", name, pin)
            lifted = ctx.state.lift_quarantine(name)
            if lifted:
                logger.info("{}: --force: {} quarantined digest(s) released", name, lifted)
            ctx.unsigned_ok = frozenset({name})  # and deploy it without a trusted signature
        else:
            _explain(single, name, force)
        return reconcile(ctx, only=only)


def _explain(cfg: Config, name: str, force: bool) -> None:
    """Say up front why a pinned or quarantined entry may not move, and how to make it."""
    if force:
        return
    state = app.state(cfg)
    pin = state.pinned(name)
    if pin:
        logger.warning(
            "{}: pinned to {} by `agent rollback`: it stays there; "
            "`agent update {} --force` follows the tag (and unpins)",
            name,
            pin,
            name,
        )
    if state.quarantined(name):
        logger.info("{}: quarantined digests stay skipped; `agent update {} --force` lifts that", name, name)
