"""The ACR hook endpoint: which entries a push wakes, tokens, payloads.

The Waker is a hand-written fake that records its calls (and can block or fail on demand).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from agent.config import patterns
from agent.webhook import WatchTarget
from tests.unit.webhook.support import (
    DIGEST,
    HOOK,
    JSON,
    TOKEN,
    Resp,
    Running,
    acr_payload,
)

# -- the ACR hook -------------------------------------------------------------------------


def test_aliyun_hook_wakes_every_entry_watching_the_pushed_repository(make: Callable[..., Running]) -> None:
    """With match_tag off, a push to any tag of a watched repo wakes all its entries, and answers 202 at once."""
    run = make()
    r = run.request("POST", HOOK, acr_payload(tag="v9"))
    assert r.status == 202
    assert r.json() == {"queued": ["web", "web-canary"]}
    assert run.waker.calls == [(frozenset({"web", "web-canary"}), "aliyun hook shop/web:v9")]


def test_aliyun_hook_never_passes_the_payload_digest_on(make: Callable[..., Running]) -> None:
    """The payload is a hint: the digest it names reaches neither the waker nor the answer."""
    run = make()
    r = run.request("POST", HOOK, acr_payload())
    assert r.status == 202
    assert DIGEST not in repr(run.waker.calls) and DIGEST.encode() not in r.body
    assert "4444" not in repr(run.waker.calls)


def test_aliyun_hook_with_match_tag_wakes_only_entries_following_the_pushed_tag(
    make: Callable[..., Running],
) -> None:
    """With match_tag on, only entries that follow the pushed tag are woken; another tag wakes nothing."""
    run = make(match_tag=True)
    r = run.request("POST", HOOK, acr_payload(tag="canary"))
    assert (r.status, r.json()) == (202, {"queued": ["web-canary"]})
    r = run.request("POST", HOOK, acr_payload(tag="v9"))
    assert (r.status, r.json()) == (202, {"queued": []})
    assert run.waker.calls == [(frozenset({"web-canary"}), "aliyun hook shop/web:canary")]


def test_aliyun_hook_accepts_repo_full_name_when_namespace_and_name_are_missing(
    make: Callable[..., Running],
) -> None:
    """`repository.repo_full_name` alone identifies the repository."""
    run = make()
    payload: dict[str, object] = {"push_data": {"tag": "v1"}, "repository": {"repo_full_name": "shop/worker"}}
    r = run.request("POST", HOOK, payload)
    assert (r.status, r.json()) == (202, {"queued": ["worker"]})
    assert run.waker.calls == [(frozenset({"worker"}), "aliyun hook shop/worker:v1")]


def test_aliyun_hook_tolerates_unknown_fields_and_a_charset_parameter(make: Callable[..., Running]) -> None:
    """Extra fields anywhere, and `application/json; charset=utf-8`, are fine."""
    run = make()
    payload = acr_payload(tag="latest", event="push", instance={"id": "cri-x"})
    payload["repository"]["extra"] = [1, 2]  # type: ignore[index]
    body = json.dumps(payload).encode()
    r = run.request("POST", HOOK, body, {"Content-Type": "Application/JSON; charset=UTF-8"})
    assert (r.status, r.json()) == (202, {"queued": ["web", "web-canary"]})


def test_a_repository_nobody_watches_gets_202_empty_a_log_line_and_no_wake(
    make: Callable[..., Running], logs: list[str]
) -> None:
    """An unwatched repository is answered 202 {"queued": []}, logged, and wakes nothing."""
    run = make()
    r = run.request("POST", HOOK, acr_payload(namespace="other", name="thing", tag="v2"))
    assert (r.status, r.json()) == (202, {"queued": []})
    assert run.waker.calls == []
    assert any("other/thing:v2" in line and "no watch entry" in line for line in logs), logs
    assert run.hook_count("aliyun", "ignored") == 1.0


def test_repository_matching_is_case_sensitive(make: Callable[..., Running]) -> None:
    """`Shop/Web` is not `shop/web`: ACR names are lower-case, so no case folding."""
    run = make()
    r = run.request("POST", HOOK, acr_payload(namespace="Shop", name="Web"))
    assert (r.status, r.json()) == (202, {"queued": []})
    assert run.waker.calls == []


def test_wrong_or_missing_hook_token_gets_the_same_404_as_an_unknown_path(
    make: Callable[..., Running],
) -> None:
    """Wrong, missing or near-miss tokens get byte-for-byte the 404 of an unknown path, whatever the method."""
    run = make()

    def shape(r: Resp) -> tuple[int, list[tuple[str, str]], bytes]:
        return r.status, [(k, v) for k, v in r.headers if k.lower() != "date"], r.body

    reference = shape(run.request("POST", "/no/such/path", acr_payload()))
    assert reference[0] == 404
    for path in (
        "/hooks/aliyun/wrong-token",
        "/hooks/aliyun/",
        "/hooks/aliyun",
        HOOK + "x",
        HOOK[:-1],
        HOOK + "/",
        "/hooks/aliyun/" + TOKEN.upper(),
    ):
        for method in ("POST", "GET"):
            body = acr_payload() if method == "POST" else None
            assert shape(run.request(method, path, body)) == reference, (method, path)
    assert shape(run.request("GET", "/")) == reference
    assert run.waker.calls == []
    assert run.hook_count("aliyun", "unauthorized") == 14.0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "empty body"),
        (b"[1, 2]", "JSON object"),
        (b'{"push_data": {"tag": "v1"}}', "repository"),
        (b'{"repository": {"namespace": "shop", "name": "web"}}', "push_data"),
        (b'{"repository": {"namespace": "shop", "name": "web"}, "push_data": {}}', "push_data.tag"),
        (b'{"repository": {"namespace": "shop", "name": "web"}, "push_data": {"tag": 7}}', "push_data.tag"),
        (b'{"repository": {"repo_full_name": "shopweb"}, "push_data": {"tag": "v1"}}', "repo_full_name"),
        (b'{"repository": {"namespace": "shop"}, "push_data": {"tag": "v1"}}', "repository.name"),
        (
            b'{"repository": {"namespace": "shop", "name": "web"}, "push_data": {"tag": "a b"}}',
            "push_data.tag",
        ),
        (b'{"repository": {"namespace": "sh\\nop", "name": "web"}, "push_data": {"tag": "v1"}}', "namespace"),
        (
            b'{"repository": {"namespace": "shop", "name": "web"}, "push_data": {"tag": "v1\\n"}}',
            "push_data.tag",
        ),
        (b"[" * 100000 + b"]" * 100000, "too_large_or_malformed"),
        (b"\xff\xfe\x00garbage", "malformed JSON"),
    ],
)
def test_a_bad_payload_gets_400_naming_the_problem_and_wakes_nothing(
    make: Callable[..., Running], body: bytes, needle: str
) -> None:
    """Malformed JSON, a non-object, missing or ill-typed fields: 400 with a JSON error naming the problem."""
    run = make(max_body=1 << 20)
    r = run.request("POST", HOOK, body, JSON)
    assert r.status == 400, r.body
    error = str(r.json()["error"])
    if needle != "too_large_or_malformed":
        assert needle in error, error
    assert run.waker.calls == []
    assert run.request("GET", "/healthz").status == 200  # and the server is still fine


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "multipart/form-data; b=x",
    ],
)
def test_a_wrong_content_type_gets_415_naming_it(
    make: Callable[..., Running], content_type: str | None
) -> None:
    """Only application/json (any charset parameter) is accepted on the ACR hook; anything else is 415."""
    run = make()
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = run.request("POST", HOOK, json.dumps(acr_payload()).encode(), headers)
    assert r.status == 415
    assert "application/json" in str(r.json()["error"])
    assert run.waker.calls == []


def test_with_label_discovery_an_unnamed_repository_or_container_wakes_a_pass(
    make: Callable[..., Running],
) -> None:
    """`[agent] discover`: a labelled container may follow any repository, so the hook wakes one whole pass."""
    run = make(discovering=True)
    r = run.request("POST", HOOK, acr_payload(namespace="other", name="thing", tag="v2"))
    assert (r.status, r.json()) == (202, {"queued": "all"})
    assert run.waker.calls[-1][0] is None
    r = run.request("POST", "/v1/update?container=labelled", b"", {"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 202 and run.waker.calls[-1][0] == frozenset({"labelled"})


def test_match_tag_with_a_pattern_wakes_on_a_matching_tag_only(make: Callable[..., Running]) -> None:
    """`match = "tag"`: an entry with `tag = "semver:^1.2"` follows `1.4.0`, not `2.0.0` nor `1.5.0-rc.1`."""
    semver = patterns.parse("semver:^1.2", None, None)
    run = make(targets=(WatchTarget("api", "shop", "api", "1.2.0", semver),), match_tag=True)
    for tag, queued in (("1.4.0", ["api"]), ("2.0.0", []), ("1.5.0-rc.1", [])):
        r = run.request("POST", HOOK, acr_payload(namespace="shop", name="api", tag=tag))
        assert (r.status, r.json()) == (202, {"queued": queued}), tag
