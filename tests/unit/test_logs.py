"""Secrets registered with the log set-up never reach a log line, plain or JSON."""

from __future__ import annotations

import pytest
from loguru import logger

from agent import logs

SECRET = "-".join(["topsecret", "value", "1"])  # not a literal, so tracebacks cannot quote it


@pytest.mark.parametrize("as_json", [False, True])
def test_registered_secrets_are_redacted_from_messages_and_exceptions(capsys, as_json: bool) -> None:
    logs.setup("DEBUG", json=as_json)
    logs.add_secrets([SECRET])
    logger.info("token is {}", SECRET)
    try:
        raise ValueError("bad key " + SECRET)
    except ValueError:
        logger.exception("failed")
    err = capsys.readouterr().err
    assert SECRET not in err
    assert "token is ***" in err and "bad key ***" in err
    assert logs.redact(f"x {SECRET} y") == "x *** y"
