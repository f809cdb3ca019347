"""`agent --help` and each command's help: no ==SUPPRESS==, a description and an example each, every
option explained (issue 21 item 8)."""

from __future__ import annotations

import argparse

import pytest

from agent.cli.parser import COMMANDS, build


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    p = build()
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_top_level_help_shows_no_suppress_marker() -> None:
    text = build().format_help()
    assert "SUPPRESS" not in text
    assert "self-update" not in text  # run by the helper container only
    for name in COMMANDS:
        assert name in text


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description_an_example_and_option_help(name: str) -> None:
    parser = _subparsers()[name]
    text = parser.format_help()
    assert parser.description and parser.description in text
    assert "example:\n  agent " + name in text
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, f"{name}: {action.dest} has no help"


def test_commands_table_names_every_command() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    for name in COMMANDS:
        assert f"| `agent {name}" in table, name
