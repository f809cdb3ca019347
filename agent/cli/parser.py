"""The argument parser: every subcommand with a description and an example, every option with help."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent import __version__

LEVELS = ["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]
JSON_HELP = "print the report as JSON on stdout (the same keys as `agent once --json`)"
TABLE_HELP = "print the result table even when stdout is no terminal"

# name -> (one-line help, description, example lines)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "once": ("one reconcile pass (for cron)",
             "Check every watched entry once and update those whose tag points to a new digest.",
             "agent once --dry-run\nagent once -c /etc/cr-agent/agent.toml --json"),
    "run": ("the daemon: reconcile on a schedule (and on webhooks)",
            "A pass at start, then on [agent] interval or cron; webhooks and metrics when configured.",
            "agent run -c /etc/cr-agent/agent.toml"),
    "check": ("validate the config and look at the engine",
              "Validate the config; then, at no cost, check that Docker answers, state_dir is writable and\n"
              "each watched container exists and runs an image of its repository. --online also asks ACR\n"
              "and the registries. Exit codes: 0 all good (warnings allowed), 1 a problem found, 2 config error.",
              "agent check\nagent check --config-only -c agent.toml\nagent check --online -c /etc/cr-agent/agent.toml"),
    "init": ("write [[watch]] entries for the running containers",
             "List the running containers whose image comes from an ACR host (--all: any registry) and\n"
             "print a [[watch]] entry for each, or write a complete config with --write.",
             "agent init\nagent init --all --write agent.toml"),
    "update": ("update one entry now (also in mode = \"notify\")",
               "Run the safe replace for one watched container now, as a pass would, even when its mode is\n"
               "\"notify\". A pin or a quarantined digest stops it unless --force (which unpins and lifts\n"
               "the quarantine). Exit codes and --json as `agent once`.",
               "agent update web\nagent update web --force --json"),
    "notify-test": ("send a test message to each [notify] URL",
                    "Send one test message to each [notify] URL and print each result.",
                    "agent notify-test -c /etc/cr-agent/agent.toml"),
    "status": ("running and latest digests, quarantine, history",
               "Per watched entry: running digest, latest known digest, last check and deploy, pin,\n"
               "quarantine and history.",
               "agent status\nagent status --json"),
    "rollback": ("redeploy the previous (or a given) digest and pin it",
                 "Redeploy the previous (or the given) digest through the safe replace and pin it;\n"
                 "`agent unpin` follows the tag again.",
                 "agent rollback web\nagent rollback web --to sha256:3f2a..."),
    "unpin": ("follow the tag again after a rollback",
              "Drop the pin `agent rollback` set; the next pass follows the tag again.", "agent unpin web"),
    "retry": ("lift the quarantine of bad digests",
              "Release the digests that were rolled back, so the next pass may deploy them again.",
              "agent retry web"),
}  # fmt: skip


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="config file (default ./agent.toml, then /etc/cr-agent/agent.toml)",
    )
    common.add_argument("--log-level", default="INFO", type=str.upper, choices=LEVELS, metavar="LEVEL",
                        help=f"log from this level on: {', '.join(LEVELS)} (default INFO)")  # fmt: skip
    common.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    return common


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--table", action="store_true", help=TABLE_HELP)


def build() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(
        prog="agent",
        description="Keep Docker containers on the latest ACR image, safely.",
        epilog="`agent COMMAND --help` describes each command. Docs: README.md, docs/operations.md.",
    )
    p.add_argument("--version", action="version", version=f"cr-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cmd: dict[str, argparse.ArgumentParser] = {}
    for name, (text, description, example) in COMMANDS.items():
        epilog = "example:\n" + "\n".join(f"  {line}" for line in example.splitlines())
        cmd[name] = sub.add_parser(name, parents=[common], help=text, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    once = cmd["once"]
    once.add_argument("--dry-run", action="store_true", help="change nothing; report what would be done")
    _output_options(once)
    once.add_argument(
        "--metrics-file",
        metavar="PATH",
        type=Path,
        help="write metrics for node_exporter's textfile collector (atomically) after the pass",
    )
    check = cmd["check"]
    check.add_argument(
        "--online", action="store_true", help="also ask ACR, the registries and docker (docs/acr.md)"
    )
    check.add_argument("--json", action="store_true", help="with --online: the checks as JSON")
    check.add_argument(
        "--config-only",
        action="store_true",
        help="validate the file only: no engine, no state_dir (e.g. in CI, away from the host)",
    )
    init = cmd["init"]
    init.add_argument("--all", action="store_true", help="every running container, not only ACR images")
    init.add_argument("--write", metavar="PATH", type=Path, help="write a complete, commented config there")
    init.add_argument("--force", action="store_true", help="with --write: replace an existing file")
    update = cmd["update"]
    update.add_argument("container", help="the watched container (or service) to update")
    update.add_argument(
        "--force",
        action="store_true",
        help="also when pinned, quarantined or unsigned: unpin, lift the quarantine, skip the signature check",
    )
    update.add_argument("--dry-run", action="store_true", help="change nothing; report what would be done")
    _output_options(update)
    cmd["status"].add_argument("--json", action="store_true", help="print the status as JSON on stdout")
    rb = cmd["rollback"]
    rb.add_argument("container", help="the watched container (or service) to roll back")
    rb.add_argument(
        "--to", metavar="DIGEST", help="sha256:... to go back to (default: the one before the current)"
    )
    rb.add_argument(
        "--force",
        action="store_true",
        help="deploy the digest even without a trusted signature ([signatures], docs/signatures.md)",
    )
    _output_options(rb)
    cmd["unpin"].add_argument("container", help="the watched container (or service)")
    cmd["retry"].add_argument("container", help="the watched container (or service)")
    # run by the helper container that replaces the agent's own container (self_update); not for users.
    # No help= at all: argparse would list it as "==SUPPRESS==".
    selfup = sub.add_parser("self-update", parents=[common])
    selfup.add_argument("container", help="the agent's own container")
    return p
