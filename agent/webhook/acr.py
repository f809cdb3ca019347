"""ACR's trigger (触发器) payload → (namespace, name, tag). The payload is a hint: its digest is never read."""

from __future__ import annotations

import json
import re

from agent.errors import AgentError

# Names and tags from a payload end up in log lines and reasons: no spaces, no control characters.
_NAME = re.compile(r"[^\s/\x00-\x1f\x7f]{1,255}")
_TAG = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")


class BadPayload(AgentError):
    """The body is not an ACR trigger payload; the message names what is wrong."""


def printable(text: str, limit: int = 200) -> str:
    out = "".join(c if c.isprintable() else "?" for c in text)
    return out if len(out) <= limit else out[:limit] + "…"


def parse_push(body: bytes) -> tuple[str, str, str]:
    """(namespace, name, tag) from an ACR trigger payload; BadPayload naming the problem otherwise."""
    if not body.strip():
        raise BadPayload("empty body: expected the ACR trigger JSON payload")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadPayload(f"malformed JSON: {printable(str(exc), 120)}") from None
    if not isinstance(payload, dict):
        raise BadPayload("payload must be a JSON object")
    repo = payload.get("repository")
    if not isinstance(repo, dict):
        raise BadPayload("missing field 'repository' (an object)")
    namespace, name = repo.get("namespace"), repo.get("name")
    if not (isinstance(namespace, str) and namespace and isinstance(name, str) and name):
        full = repo.get("repo_full_name")
        if not isinstance(full, str) or not full:
            raise BadPayload(
                "missing field 'repository.namespace' and 'repository.name' (or 'repository.repo_full_name')"
            )
        namespace, _, name = full.partition("/")
        if not namespace or not name or "/" in name:
            raise BadPayload("field 'repository.repo_full_name' must be <namespace>/<name>")
    push = payload.get("push_data")
    if not isinstance(push, dict):
        raise BadPayload("missing field 'push_data' (an object)")
    tag = push.get("tag")
    if not isinstance(tag, str) or not tag:
        raise BadPayload("missing field 'push_data.tag' (a string)")
    if not _NAME.fullmatch(namespace):
        raise BadPayload("field 'repository.namespace' is not a valid name")
    if not _NAME.fullmatch(name):
        raise BadPayload("field 'repository.name' is not a valid name")
    if not _TAG.fullmatch(tag):
        raise BadPayload("field 'push_data.tag' is not a valid tag")
    return namespace, name, tag
