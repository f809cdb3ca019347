"""Command line: parses arguments, builds the objects, and is the only place that picks exit codes."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from agent import app, logs
from agent.choices import Source
from agent.cli.hangup import hangup_ignored
from agent.cli.parser import build
from agent.cli.selfupdate import helper_pass
from agent.config import Config, Watch, describe, find_config, load, secretfiles, weak_tokens
from agent.config.labels import describe as line
from agent.daemon import schedule
from agent.errors import AgentError, ConfigError, LockBusy
from agent.model import Report, Status, normalize_digest, short_digest
from agent.reconcile.discover import watchtower_hint
from agent.reconcile.pulls import credentials
from agent.reconcile.run import reconcile
from agent.reconcile.targets import ServiceTarget
from agent.runlock import RunLock
from agent.secret import redact
from agent.signatures.gate import require

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:

    args = build().parse_args(argv)
    logs.setup(args.log_level, args.log_json)
    if args.command == "init":  # before any config exists
        from agent.cli.init import run_init  # each command loads its own module

        return run_init(all_images=args.all, write=args.write, force=args.force)
    try:
        path = find_config(args.config)
        cfg = load(path)
    except ConfigError as e:
        return _usage_error(e, args.log_json)
    for warning in (*secretfiles.warnings(path), *cfg.warnings):
        logger.warning("{}", warning)
    try:
        if args.command == "check" and (weak := weak_tokens(cfg)):
            raise ConfigError(weak)
        if args.command == "check" and args.online:
            from agent.cli.online import run_online  # the ACR SDK: only for `check --online`

            return run_online(cfg, as_json=args.json)
        if args.command == "check":
            from agent.cli.check import check_engine  # the docker SDK: not for `check --config-only`

            print(describe(cfg, keyless=_keyless(cfg)))
            print(f"  schedule of `agent run`: {schedule.describe(cfg.agent.schedule)}")
            _check_routes(cfg)
            _check_labels(cfg)
            print("config OK")
            return EXIT_OK if args.config_only or check_engine(cfg) else EXIT_FAILED
        if args.command == "update":
            from agent.cli.update import update_one  # each command loads its own module

            watch = _require_watched(cfg, args.container)
            report = update_one(cfg, watch, force=args.force, dry_run=args.dry_run)
            _print_report(report, _output(args))
            return EXIT_OK if report.ok else EXIT_FAILED
        if args.command == "once":
            return _once(cfg, dry_run=args.dry_run, output=_output(args), metrics_file=args.metrics_file)
        if args.command == "run":
            from agent.daemon import run_daemon  # `agent run` only

            for problem in weak_tokens(cfg):
                logger.warning("{} (`agent check` refuses it)", problem)

            return run_daemon(cfg, app.build_context)
        if args.command == "self-update":
            return EXIT_OK if helper_pass(cfg, args.container).ok else EXIT_FAILED
        if args.command == "notify-test":
            return _notify_test(cfg)
        if args.command == "status":
            from agent.cli.status import status  # each command loads its own module

            return status(cfg, as_json=args.json)
        if args.command == "rollback":
            return _rollback(cfg, args.container, args.to, output=_output(args), force=args.force)
        return _unpin_or_retry(cfg, args.command, args.container)
    except LockBusy as e:
        logger.error("{}", e)
        return EXIT_BUSY
    except ConfigError as e:
        return _usage_error(e, args.log_json)
    except AgentError as e:
        logger.error("{}", e)
        _print_failure(args, str(e))
        return EXIT_FAILED
    except Exception as e:  # a bug: say so plainly, exit non-zero
        logger.opt(exception=e).error("unexpected error: {}", e)
        _print_failure(args, f"unexpected error: {e}")
        return EXIT_FAILED


def _usage_error(e: ConfigError, log_json: bool) -> int:
    """Config problems on stderr: plain lines, or one JSON log line under --log-json."""
    if log_json:
        logger.bind(event="config.invalid", problems=len(e.problems)).error("{}", e)
    else:
        print(f"agent: {e}", file=sys.stderr)
    return EXIT_USAGE


def _output(args: argparse.Namespace) -> str:
    """What a pass prints on stdout: the JSON report, the human table (a TTY or --table), or nothing.

    Nothing by default off a TTY, so `--log-json >> file 2>&1` from cron stays pure JSON lines.
    """
    if args.json:
        return "json"
    return "table" if args.table or sys.stdout.isatty() else "none"


def _print_failure(args: argparse.Namespace, error: str) -> None:
    """With --json, a pass that could not run still prints a report: its error and no results."""
    if getattr(args, "json", False):
        print(redact(json.dumps({"ok": False, "error": error, "results": []}, indent=2)))


def _once(cfg: Config, *, dry_run: bool, output: str, metrics_file: Path | None = None) -> int:

    if dry_run:
        if metrics_file is not None:
            raise ConfigError(["--metrics-file: not with --dry-run (a dry run changes and counts nothing)"])
        report = reconcile(app.build_context(cfg), dry_run=True)
    else:
        metrics = None
        if metrics_file is not None:
            from agent.metrics import Metrics  # prometheus-client: only with metrics

            metrics = Metrics()
        with hangup_ignored(), RunLock(cfg.agent.state_dir / "agent.lock"), _pull_bars(output) as bars:
            ctx = app.build_context(cfg, metrics=metrics, on_progress=bars)
            if cfg.agent.heartbeat_url is None:
                report = reconcile(ctx)
            else:
                from agent.notify.heartbeat import wrap  # only a configured heartbeat pays for urllib

                report = wrap(cfg.agent.heartbeat_url, lambda: reconcile(ctx))
        if metrics is not None and metrics_file is not None:
            try:
                metrics.write_textfile(metrics_file)
            except OSError as e:
                _print_report(report, output)
                logger.error("--metrics-file: cannot write {}: {}", metrics_file, e.strerror or e)
                return EXIT_FAILED
    _print_report(report, output)
    return EXIT_OK if report.ok else EXIT_FAILED


def _pull_bars(output: str) -> Any:
    """Live pull progress bars when stdout is a terminal that shows the table; else nothing."""
    import contextlib

    if output != "table" or not sys.stdout.isatty():
        return contextlib.nullcontext(None)
    from agent.cli.progress import PullBars  # rich: only on a terminal

    return PullBars()


def _print_report(report: Report, output: str) -> None:
    if output == "json":
        print(redact(json.dumps(report.as_json(), indent=2)))
        return
    if output != "table":
        return
    for r in report.results:
        line = f"{r.container:<24} {r.status.value:<12} {short_digest(r.current_digest)} → {short_digest(r.to_digest)}"
        if r.error:
            line += f"  {r.error}"
        print(redact(line))


def _check_labels(cfg: Config) -> None:

    if cfg.agent.discover is None:
        try:
            hint = watchtower_hint(app.runtime(cfg).list_containers())
        except AgentError:  # no engine to ask: the file alone is checked
            hint = None
        if hint:
            print(f"  hint: {hint}")
        return
    try:
        found = app.discovered(cfg)
    except AgentError as e:
        print(f"  labels: cannot list containers ({e})")
        return
    for w in found.watches:
        print(redact(f"  {line(w)}"))
    for r in (*found.failed, *found.skipped):
        print(redact(f"  {r.container}: {r.status.value}: {r.error}"))


def _keyless(cfg: Config) -> bool:
    """ACR watches with no key and no source of the credential chain set up here."""
    if not any(w.source is Source.ALIYUN for w in cfg.watches):
        return False
    from agent.registries.acr_public import keyless  # the ACR SDK only when an ACR watch needs it

    return keyless(cfg.aliyun)


def _check_routes(cfg: Config) -> None:
    """ACR images followed through the registry: without an AccessKey, or remembered as not in the account."""
    from agent.registries.acr_public import describe_routes  # the ACR SDK only when an ACR watch needs it

    if any(w.source is Source.ALIYUN for w in cfg.watches):
        for line in describe_routes(cfg.agent.state_dir):
            print(redact(line))


def _notify_test(cfg: Config) -> int:
    from agent.notify.send import Notifier, scheme  # apprise: only with [notify]

    if cfg.notify is None:
        raise ConfigError(["notify: no [notify] section with urls in the config"])
    outcome = Notifier(cfg.notify).test()
    for i, (url, (ok, why)) in enumerate(zip(cfg.notify.urls, outcome, strict=True)):
        print(f"#{i + 1} {scheme(url.reveal())}://…  {'ok' if ok else 'FAILED'}: {why}")
    return EXIT_OK if all(ok for ok, _ in outcome) else EXIT_FAILED


def _require_watched(cfg: Config, container: str) -> Watch:
    """The entry (from [[watch]] or labels) of that name, or a clear error listing the watched ones."""
    found = app.discovered(cfg) if cfg.agent.discover else None
    watches: list[Watch] = [*cfg.watches, *(found.watches if found else ())]
    for w in watches:
        if w.container == container:
            return w
    names = ", ".join(w.container for w in watches)
    raise ConfigError([f"{container!r} is not a watched container or service (watched: {names})"])


def _rollback(cfg: Config, container: str, to: str | None, *, output: str, force: bool = False) -> int:

    watch = _require_watched(cfg, container)
    if watch.kind == "service" and not to:
        return _rollback_service(cfg, watch, output=output)
    if to:
        try:
            target = normalize_digest(to)
        except ValueError as e:
            raise ConfigError([f"--to: {e}"]) from None
    else:
        previous = [
            h.from_digest
            for h in app.state(cfg).history(container, 50)
            if h.outcome == "updated" and h.from_digest
        ]
        if not previous:
            raise ConfigError([f"{container}: no earlier deployment in the history; give --to sha256:..."])
        target = previous[0]
    with RunLock(cfg.agent.state_dir / "agent.lock"):
        from agent.cli.update import one_entry  # mode "update" for this entry: a rollback in notify mode too

        ctx = app.build_context(one_entry(cfg, watch))
        before = ctx.state.pinned(container)
        if force:
            ctx.unsigned_ok = frozenset({container})
        else:
            creds = functools.partial(credentials, ctx.config, ctx.registries, watch)
            require(
                ctx.config, ctx.state, ctx.signature_reader, watch, target, creds, "--force"
            )  # before any pin
        ctx.state.pin(container, target)
        logger.info(
            "{}: pinned to {} (run `agent unpin {}` to follow the tag again)", container, target, container
        )
        report = reconcile(ctx, only=frozenset({container}))
        done = [r.status for r in report.results if r.container == container]
        if done not in ([Status.UPDATED], [Status.UP_TO_DATE]):  # a failed rollback pins nothing
            if before:
                ctx.state.pin(container, before)
            else:
                ctx.state.unpin(container)
            logger.warning(
                "{}: the rollback to {} did not happen; {}",
                container,
                target,
                f"the earlier pin to {before} stays" if before else "the pin is removed",
            )
    _print_report(report, output)
    return EXIT_OK if report.ok else EXIT_FAILED


def _rollback_service(cfg: Config, watch: Watch, *, output: str) -> int:
    """Swarm's own rollback to the previous spec, then a pin to the digest it returned to."""

    with RunLock(cfg.agent.state_dir / "agent.lock"):
        ctx = app.build_context(cfg)
        target = ctx.target(watch)
        assert isinstance(target, ServiceTarget)
        result, digest = target.deployer.rollback(watch)
        if digest:
            ctx.state.pin(watch.container, digest)
            logger.info(
                "{}: rolled back and pinned to {} (`agent unpin {}` to follow the tag again)",
                watch.container,
                digest,
                watch.container,
            )
    report = Report((result,))
    _print_report(report, output)
    return EXIT_OK if report.ok else EXIT_FAILED


def _unpin_or_retry(cfg: Config, command: str, container: str) -> int:
    _require_watched(cfg, container)
    state = app.state(cfg)
    if command == "unpin":
        had = state.unpin(container)
        print(f"{container}: {'unpinned, following the tag again' if had else 'was not pinned'}")
    else:
        n = state.lift_quarantine(container)
        print(f"{container}: {n} quarantined digest(s) released; the next pass may deploy them again")
    return EXIT_OK
