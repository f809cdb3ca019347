"""AliyunRegistry through the real SDK against the fake ACR server (signatures verified for real)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from loguru import logger

from agent.errors import RegistryError, TagDigestError
from agent.model import RepoKey
from agent.registries import Registry
from agent.registries.aliyun import AliyunRegistry, _split_endpoint
from tests.support.fake_acr import FakeAcr

KEY, SECRET = "test-key-id", "test-key-secret"
D1, D2 = "a" * 64, "b" * 64
APP = RepoKey("registry.cn-hangzhou.aliyuncs.com", "ns", "app")
GONE = RepoKey("registry.cn-hangzhou.aliyuncs.com", "ns", "gone")
ROOT = Path(__file__).resolve().parents[3]


_open: list[AliyunRegistry] = []


@pytest.fixture(autouse=True)
def _close_adapters():
    """Close every adapter a test built, so no pooled socket outlives its test."""
    yield
    while _open:
        _open.pop().close()


@pytest.fixture
def fake():
    with FakeAcr(tags={"ns/app": {"latest": D1, "v1": "sha256:" + D2}}) as f:
        yield f


def make(fake: FakeAcr, sleeps: list[float] | None = None, **kw) -> AliyunRegistry:
    args = dict(
        access_key_id=KEY,
        access_key_secret=SECRET,
        region="cn-hangzhou",
        endpoint=fake.url,
        connect_timeout=1,
        read_timeout=2,
        backoff=0.01,
        sleep=(sleeps if sleeps is not None else []).append,
    )
    args.update(kw)
    return adapter(**args)


def adapter(**kw) -> AliyunRegistry:
    _open.append(AliyunRegistry(**kw))
    return _open[-1]


def enterprise(fake: FakeAcr, **kw) -> AliyunRegistry:
    return make(fake, edition="enterprise", instance_id="cri-test", **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the happy paths -----------------------------------------------------------------------
def test_adapter_satisfies_the_registry_port(fake):
    """AliyunRegistry is a Registry (structurally)."""
    registry: Registry = make(fake)
    assert registry.latest(APP, ["latest"]) == {"latest": "sha256:" + D1}


def test_quiet_pass_makes_one_request_when_tags_are_on_the_first_page(fake):
    """Both wanted tags on page 1: exactly one GetRepoTags request, digests normalised to sha256:."""
    assert make(fake).latest(APP, ["latest", "v1"]) == {"latest": "sha256:" + D1, "v1": "sha256:" + D2}
    assert fake.stats()["requests"] == {"GET /repos/ns/app/tags": 1}
    assert fake.stats()["repos"] == {"ns/app": 1}


def test_wanted_tag_on_page_two_is_found_by_paging():
    """More than 30 tags, server pages by 30: the watched tag on page 2 costs exactly two requests."""
    with FakeAcr(
        tags={"ns/app": {"latest": D1}}, extra_tags={"ns/app": 45}, order="extra-first", personal_page_max=30
    ) as f:
        assert make(f).latest(APP, ["latest"]) == {"latest": "sha256:" + D1}
        assert f.stats()["actions"] == {"GetRepoTags": 2}


def test_tags_on_page_one_of_a_long_list_cost_one_request():
    """Paging stops as soon as every wanted tag is found, even when more pages exist."""
    with FakeAcr(tags={"ns/app": {"latest": D1}}, extra_tags={"ns/app": 45}, personal_page_max=30) as f:
        assert make(f).latest(APP, ["extra-001"])["extra-001"].startswith("sha256:")
        assert f.stats()["actions"] == {"GetRepoTags": 1}


def test_refused_page_size_falls_back_to_30(fake):
    """If the personal API rejects PageSize=100 (its limit is undocumented), the adapter uses 30 from then on."""
    registry = make(fake)
    fake.inject(
        "status",
        status=400,
        code="PARAM_INVALID",
        body='{"code": "PARAM_INVALID", "message": "pageSize too big"}',
    )
    assert registry.latest(APP, ["latest"]) == {"latest": "sha256:" + D1}
    assert registry._page_size == 30 and fake.stats()["total"] == 2


def test_missing_tag_is_left_out_after_reading_every_page():
    """A tag the repository does not have is absent from the result, not an error."""
    with FakeAcr(tags={"ns/app": {"latest": D1}}, extra_tags={"ns/app": 70}, personal_page_max=30) as f:
        assert make(f).latest(APP, ["latest", "nope"]) == {"latest": "sha256:" + D1}
        assert f.stats()["actions"] == {"GetRepoTags": 3}


def test_empty_tag_list_makes_no_request(fake):
    """No wanted tags: no API call."""
    assert make(fake).latest(APP, []) == {}
    assert fake.stats()["total"] == 0


# -- signatures and credentials ------------------------------------------------------------
def test_wrong_secret_fails_with_signature_does_not_match(fake):
    """Personal edition: a wrong secret surfaces ACR's SignatureDoesNotMatch, permanent, secret not shown."""
    with pytest.raises(RegistryError) as e:
        make(fake, access_key_secret="wrong-secret-value").latest(APP, ["latest"])
    assert e.value.code == "SignatureDoesNotMatch"
    assert not e.value.temporary
    assert "ns/app" in str(e.value)
    assert "wrong-secret-value" not in str(e.value) and "string to sign" not in str(e.value)
    assert fake.stats()["total"] == 1


def test_enterprise_wrong_secret_is_reported_by_the_sdk_as_invalid_access_key_secret(fake):
    """RPC: the SDK turns a SignatureDoesNotMatch whose string-to-sign matches its own into InvalidAccessKeySecret."""
    with pytest.raises(RegistryError) as e:
        enterprise(fake, access_key_secret="wrong-secret-value").latest(APP, ["latest"])
    assert e.value.code == "InvalidAccessKeySecret"
    assert not e.value.temporary and "wrong-secret-value" not in str(e.value)


def test_unknown_access_key_is_a_permanent_error(fake):
    """An access key id the server does not know gives InvalidAccessKeyId.NotFound, without retries."""
    sleeps: list[float] = []
    with pytest.raises(RegistryError) as e:
        make(fake, sleeps, access_key_id="nobody").latest(APP, ["latest"])
    assert e.value.code == "InvalidAccessKeyId.NotFound" and not e.value.temporary
    assert sleeps == []


def test_env_access_key_does_not_override_explicit_credentials(fake, monkeypatch):
    """ALIYUN_ACCESS_KEY_ID/SECRET in the environment are ignored: the configured key signs."""
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_SECRET", "env-secret")
    make(fake).latest(APP, ["latest"])
    enterprise(fake).latest(APP, ["latest"])
    assert fake.stats()["keys"] == {KEY: 3}


def test_proxy_env_is_not_used_for_a_loopback_endpoint(fake, monkeypatch):
    """HTTP(S)_PROXY pointing at a dead port does not stop the adapter reaching a loopback endpoint."""
    dead = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead)
    assert make(fake).latest(APP, ["latest"]) == {"latest": "sha256:" + D1}


def test_no_proxy_is_honoured_for_a_remote_endpoint(monkeypatch):
    """The SDK ignores NO_PROXY; the adapter turns the proxy off itself for hosts NO_PROXY lists."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", ".aliyuncs.com")
    kw = dict(access_key_id=KEY, access_key_secret=SECRET, region="cn-hangzhou")
    assert sdk_client(adapter(**kw)).proxy == {"http": None, "https": None}
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert sdk_client(adapter(**kw)).proxy is None  # the SDK then uses HTTPS_PROXY


def sdk_client(a: AliyunRegistry):
    """The SDK client the adapter signs its next request with."""
    return a._sdk.client(a._creds.current())


@pytest.mark.parametrize("edition", ["personal", "enterprise"])
def test_sts_token_is_sent_and_signed(edition):
    """With security_token, the request carries the STS token and the server accepts it."""
    keys = {"sts-id": "sts-secret"}
    with FakeAcr(tags={"ns/app": {"latest": D1}}, access_keys=keys, sts_tokens={"sts-id": "sts-token"}) as f:
        kw = dict(access_key_id="sts-id", access_key_secret="sts-secret", security_token="sts-token")
        if edition == "enterprise":
            kw.update(edition="enterprise", instance_id="cri-test")
        assert make(f, **kw).latest(APP, ["latest"]) == {"latest": "sha256:" + D1}


def test_credentials_come_from_get_authorization_token_and_are_cached(fake):
    """credentials(host) returns the temporary login and reuses it until shortly before expiry."""
    registry = make(fake)
    first = registry.credentials("registry.cn-hangzhou.aliyuncs.com")
    assert first == ("cr-test", "cr-test-password")
    assert registry.credentials("registry-vpc.cn-hangzhou.aliyuncs.com") == first
    assert fake.stats()["actions"] == {"GetAuthorizationToken": 1}


def test_credentials_are_renewed_when_close_to_expiry():
    """A token that expires within the safety margin is fetched again."""
    with FakeAcr(tags={}, token_ttl=60) as f:
        registry = make(f)
        registry.credentials("registry.cn-hangzhou.aliyuncs.com")
        registry.credentials("registry.cn-hangzhou.aliyuncs.com")
        assert f.stats()["actions"] == {"GetAuthorizationToken": 2}


def test_enterprise_credentials_use_the_instance(fake):
    """Enterprise: GetAuthorizationToken with InstanceId, only for the hosts mapped to that instance."""
    registry = enterprise(fake, registry_hosts=["myinst-registry.cn-hangzhou.cr.aliyuncs.com"])
    assert registry.credentials("other-registry.cn-hangzhou.cr.aliyuncs.com") is None
    creds = registry.credentials("myinst-registry.cn-hangzhou.cr.aliyuncs.com")
    assert creds == ("cr-test", "cr-test-password")
    assert fake.stats()["actions"] == {"GetAuthorizationToken": 1}


def test_credentials_are_never_issued_for_foreign_hosts(fake):
    """A token for ACR is not handed out for docker.io or another region, and no request is made."""
    registry = make(fake)
    assert registry.credentials("docker.io") is None
    assert registry.credentials("registry.cn-beijing.aliyuncs.com") is None
    assert make(fake, registry_hosts=["127.0.0.1:5000"]).credentials("127.0.0.1:5000") is not None
    assert fake.stats()["actions"] == {"GetAuthorizationToken": 1}


# -- retries -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "params", "code"),
    [
        ("status", {"status": 500}, "InternalError"),
        ("status", {"status": 503}, "ServiceUnavailable"),
        ("throttle", {}, "Throttling.User"),
        ("status", {"status": 502, "body": "<html>bad gateway</html>"}, "error"),
    ],
)
@pytest.mark.parametrize("edition", ["personal", "enterprise"])
def test_temporary_failures_are_retried_then_succeed(fake, kind, params, code, edition):
    """Two 5xx / throttling answers, then success: the caller sees the digest; backoff slept twice."""
    sleeps: list[float] = []
    calls: list[tuple[str, float, str]] = []
    kw = dict(edition="enterprise", instance_id="cri-test") if edition == "enterprise" else {}
    registry = make(fake, sleeps, on_request=lambda *a: calls.append(a), **kw)
    fake.inject(kind, count=2, **params)
    assert registry.latest(APP, ["latest"]) == {"latest": "sha256:" + D1}
    assert len(sleeps) == 2
    assert [c[2] for c in calls][:3] == [code, code, "ok"]


def test_gives_up_after_bounded_retries_with_a_temporary_error(fake):
    """A server that keeps answering 503: retries+1 requests, full-jitter sleeps within the cap, temporary."""
    sleeps: list[float] = []
    fake.inject("status", count=None, status=503)
    with pytest.raises(RegistryError) as e:
        make(fake, sleeps, retries=4, backoff=1.0, backoff_max=2.0).latest(APP, ["latest"])
    assert e.value.temporary and e.value.code == "ServiceUnavailable"
    assert fake.stats()["total"] == 5
    assert len(sleeps) == 4 and all(0 <= s <= min(2.0, 2**i) for i, s in enumerate(sleeps))


def test_total_timeout_stops_retries(fake):
    """No retry is started that would end beyond total_timeout."""
    fake.inject("status", count=None, status=500)
    with pytest.raises(RegistryError) as e:
        make(fake, retries=5, backoff=10, backoff_max=10, total_timeout=0).latest(APP, ["latest"])
    assert e.value.temporary and fake.stats()["total"] == 1


def test_repo_not_exist_is_not_retried(fake):
    """REPO_NOT_EXIST (lower-case personal body) is permanent, names the repository, one request."""
    sleeps: list[float] = []
    with pytest.raises(RegistryError) as e:
        make(fake, sleeps).latest(GONE, ["latest"])
    assert e.value.code == "REPO_NOT_EXIST" and not e.value.temporary
    assert "ns/gone" in str(e.value) and "repo not exist" in str(e.value) and "request id" in str(e.value)
    assert sleeps == [] and fake.stats()["total"] == 1


def test_slow_response_beyond_read_timeout_is_temporary_within_bounded_time(fake):
    """A server slower than read_timeout: SDK.HttpError, temporary, and the call returns promptly."""
    fake.inject("delay", count=None, delay=5)
    start = time.monotonic()
    with pytest.raises(RegistryError) as e:
        make(fake, read_timeout=0.3, retries=1).latest(APP, ["latest"])
    assert time.monotonic() - start < 2.5
    assert e.value.temporary and e.value.code == "SDK.HttpError"
    assert fake.stats()["total"] == 2


def test_unreachable_endpoint_is_temporary():
    """Nothing listening: a temporary SDK.HttpError after the retries."""
    sleeps: list[float] = []
    registry = adapter(
        access_key_id=KEY,
        access_key_secret=SECRET,
        region="cn-hangzhou",
        endpoint=f"http://127.0.0.1:{closed_port()}",
        retries=2,
        sleep=sleeps.append,
    )
    with pytest.raises(RegistryError) as e:
        registry.latest(APP, ["latest"])
    assert e.value.temporary and e.value.code == "SDK.HttpError" and len(sleeps) == 2


# -- odd answers ---------------------------------------------------------------------------
@pytest.mark.parametrize("body", ['{"data": {"tags": "nope"}}', '{"data": 7}'])
def test_unexpected_json_is_an_unexpected_answer_error(fake, body):
    """Wrongly shaped 200 answers give RegistryError 'unexpected answer', never a crash."""
    fake.inject("garbage", body=body)
    with pytest.raises(RegistryError, match="unexpected answer from ACR") as e:
        make(fake).latest(APP, ["latest"])
    assert not e.value.temporary


@pytest.mark.parametrize("body", [None, "[1, 2]"])
def test_a_200_that_is_not_a_json_object_is_temporary_and_retried(fake, body):
    """A gateway's HTML page with status 200: retried, then the real answer counts."""
    sleeps: list[float] = []
    fake.inject("garbage", body=body)
    assert make(fake, sleeps).latest(APP, ["latest"]) == {"latest": "sha256:" + D1}
    assert len(sleeps) == 1
    fake.inject("garbage", count=None, body=body)
    with pytest.raises(RegistryError, match="not a JSON object") as e:
        make(fake).latest(APP, ["latest"])
    assert e.value.temporary


def test_an_empty_page_before_total_is_an_error_not_a_missing_tag(fake):
    """total says 50 but the page is empty: a temporary error, never "tag not found"."""
    empty = {"data": {"page": 1, "pageSize": 30, "total": 50, "tags": []}}
    fake.inject("garbage", count=None, body=json.dumps(empty))
    with pytest.raises(RegistryError, match="came back empty after 0 of 50") as e:
        make(fake, retries=0).latest(APP, ["latest"])
    assert e.value.temporary and e.value.code == "PAGING"


def test_later_pages_use_the_page_size_the_server_echoed():
    """A server that caps PageSize but counts pages in the size asked would hide tags 30-99."""
    with FakeAcr(tags={"ns/app": {"zz-last": D1}}, extra_tags={"ns/app": 80}, personal_page_max=30,
                 offset_by_request=True) as f:  # fmt: skip
        assert make(f).latest(APP, ["extra-050", "zz-last"]) == {
            "extra-050": "sha256:" + dict(f.repo_tags("ns/app") or [])["extra-050"],
            "zz-last": "sha256:" + D1,
        }


def test_odd_tag_entries_are_ignored(fake):
    """Tag entries that are not objects or have non-string names are skipped."""
    fake.inject(
        "garbage",
        body=json.dumps({"data": {"total": 3, "tags": [1, {"tag": []}, {"tag": "latest", "digest": D1}]}}),
    )
    assert make(fake).latest(APP, ["latest"]) == {"latest": "sha256:" + D1}


def test_lowercase_enterprise_error_body_is_parsed(fake):
    """An enterprise error body with lower-case keys still yields ACR's code."""
    fake.inject("lowercase", count=None)
    with pytest.raises(RegistryError) as e:
        enterprise(fake).latest(GONE, ["latest"])
    assert e.value.code == "REPO_NOT_EXIST" and not e.value.temporary


def test_enterprise_error_inside_http_200_is_an_error(fake):
    """IsSuccess=false with HTTP 200 is an error with ACR's code, not an empty result."""
    fake.inject("soft", count=None)
    with pytest.raises(RegistryError) as e:
        enterprise(fake).latest(GONE, ["latest"])
    assert e.value.code == "REPO_NOT_EXIST" and "ns/gone" in str(e.value)


def test_sdk_tripping_over_an_error_body_becomes_a_registry_error(fake):
    """The SDK raises IndexError on a capitalised SignatureDoesNotMatch without ':'; we wrap it."""
    fake.inject("status", status=400, body='{"Code": "SignatureDoesNotMatch", "Message": "no colon"}')
    with pytest.raises(RegistryError, match="unexpected failure in the ACR SDK"):
        enterprise(fake).latest(APP, ["latest"])


def test_invalid_digest_is_an_error_for_that_tag_only():
    """A wanted tag with a malformed digest raises TagDigestError carrying the good tags."""
    with FakeAcr(tags={"ns/app": {"latest": D1, "bad": "not-a-digest"}}) as f:
        registry = make(f)
        with pytest.raises(TagDigestError) as e:
            registry.latest(APP, ["latest", "bad"])
        assert e.value.found == {"latest": "sha256:" + D1} and set(e.value.bad) == {"bad"}
        assert "ns/app:bad" in str(e.value) and e.value.code == "InvalidDigest"
        assert registry.latest(APP, ["latest"]) == {"latest": "sha256:" + D1}


# -- enterprise ----------------------------------------------------------------------------
def test_enterprise_caches_repo_id_for_the_adapter_lifetime(fake):
    """The second pass over a repository makes only the ListRepoTag request."""
    registry = enterprise(fake)
    assert registry.latest(APP, ["latest"]) == {"latest": "sha256:" + D1}
    fake.reset_stats()
    assert registry.latest(APP, ["v1"]) == {"v1": "sha256:" + D2}
    assert fake.stats()["actions"] == {"ListRepoTag": 1}


def test_enterprise_resolves_repo_id_again_after_repo_not_exist(fake):
    """A repository deleted and re-created gets a fresh GetRepository on the next pass."""
    registry = enterprise(fake)
    registry.latest(APP, ["latest"])
    fake.static.pop("ns/app")
    with pytest.raises(RegistryError, match="REPO_NOT_EXIST"):
        registry.latest(APP, ["latest"])
    fake.set_tags("ns/app", {"latest": D2})
    fake.reset_stats()
    assert registry.latest(APP, ["latest"]) == {"latest": "sha256:" + D2}
    assert fake.stats()["actions"] == {"GetRepository": 1, "ListRepoTag": 1}


def test_enterprise_pages_with_total_count_as_a_string():
    """ListRepoTag pages of 100 with TotalCount a string: a tag on page 2 is found with two list calls."""
    with FakeAcr(tags={"ns/app": {"latest": D1}}, extra_tags={"ns/app": 150}, order="extra-first") as f:
        assert enterprise(f).latest(APP, ["latest", "nope"]) == {"latest": "sha256:" + D1}
        assert f.stats()["actions"] == {"GetRepository": 1, "ListRepoTag": 2}


def test_enterprise_unknown_instance_is_a_permanent_error(fake):
    """An InstanceId the server does not know is reported with its code."""
    with pytest.raises(RegistryError) as e:
        make(fake, edition="enterprise", instance_id="cri-nope").latest(APP, ["latest"])
    assert e.value.code == "INSTANCE_NOT_EXIST" and not e.value.temporary


# -- secrets -------------------------------------------------------------------------------
def test_secrets_and_tokens_never_appear_in_errors_or_logs(fake, caplog):
    """Neither the secret, the STS token nor a pull token shows up in error text or any log line."""
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    caplog.set_level(logging.DEBUG)
    secret, token = "s3cr3t-value-xyz", "sts-token-value-xyz"
    errors: list[RegistryError] = []
    try:
        kw = dict(access_key_secret=secret, security_token=token)
        for registry in (make(fake, **kw), enterprise(fake, **kw)):
            with pytest.raises(RegistryError) as e:
                registry.latest(APP, ["latest"])
            errors.append(e.value)
        dead = f"http://127.0.0.1:{closed_port()}"
        with pytest.raises(RegistryError) as e:
            enterprise(fake, endpoint=dead, retries=1, **kw).latest(APP, ["latest"])
        errors.append(e.value)
        good = make(fake)
        user, password = good.credentials("registry.cn-hangzhou.aliyuncs.com")
        fake.inject(
            "status", count=None, status=500, body=json.dumps({"code": "X", "message": "echo " + password})
        )
        with pytest.raises(RegistryError) as e:
            good.latest(APP, ["latest"])
        errors.append(e.value)
    finally:
        logger.remove(sink)
    text = "\n".join(str(e) + repr(e.__cause__) + repr(e.__context__) for e in errors)
    text += "\n".join(lines) + caplog.text
    for value in (secret, token, password):
        assert value not in text


def test_on_request_reports_action_duration_and_outcome(fake):
    """on_request gets (action, seconds, 'ok' | error code) for every attempt."""
    calls: list[tuple[str, float, str]] = []
    registry = make(fake, on_request=lambda *a: calls.append(a))
    registry.latest(APP, ["latest"])
    with pytest.raises(RegistryError):
        registry.latest(GONE, ["latest"])
    assert [(a, o) for a, _, o in calls] == [("GetRepoTags", "ok"), ("GetRepoTags", "REPO_NOT_EXIST")]
    assert all(isinstance(s, float) and s >= 0 for _, s, _ in calls)


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://127.0.0.1:18080", ("http", "127.0.0.1:18080")),
        ("https://cr.cn-hangzhou.aliyuncs.com/", ("https", "cr.cn-hangzhou.aliyuncs.com")),
        ("cr-vpc.cn-hangzhou.aliyuncs.com", ("https", "cr-vpc.cn-hangzhou.aliyuncs.com")),
    ],
)
def test_endpoint_forms(endpoint, expected):
    """A URL keeps its scheme; a bare host means https."""
    assert _split_endpoint(endpoint) == expected


@pytest.mark.parametrize(
    "kw",
    [
        {"edition": "enterprise"},
        {"edition": "pro"},
        {"region": "CN HANGZHOU"},
        {"access_key_secret": ""},
        {"endpoint": "ftp://x"},
        {"endpoint": "http://host/path"},
    ],
)
def test_invalid_settings_are_refused(kw):
    """Bad constructor arguments raise our RegistryError naming the problem, never a ValueError (issue 10)."""
    args = dict(access_key_id=KEY, access_key_secret=SECRET, region="cn-hangzhou") | kw
    with pytest.raises(RegistryError) as e:
        AliyunRegistry(**args)
    assert e.value.code == "CONFIG" and not isinstance(e.value, ValueError)


def test_repr_hides_credentials(fake):
    """repr() names the endpoint, not the keys."""
    text = repr(make(fake))
    assert SECRET not in text and KEY not in text


# -- the fake itself -----------------------------------------------------------------------
def _post(url: str, data: object) -> dict:
    req = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=5) as resp:
        return json.loads(resp.read())


def _get(url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_fake_runs_as_a_process_with_control_endpoints():
    """`python -m tests.support.fake_acr` serves signed API calls; /_fake/faults and /_fake/stats drive it."""
    port = closed_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_acr", "--port", str(port), "--order", "name"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"fake-acr listening on http://127.0.0.1:{port}"
        base = f"http://127.0.0.1:{port}"
        _post(base + "/_fake/tags", {"repo": "ns/app", "tags": {"latest": "sha256:" + D1}})
        _post(base + "/_fake/faults", {"kind": "status", "status": 503, "count": 1})
        sleeps: list[float] = []
        registry = adapter(
            access_key_id=KEY,
            access_key_secret=SECRET,
            region="cn-hangzhou",
            endpoint=base,
            sleep=sleeps.append,
        )
        assert registry.latest(APP, ["latest"]) == {"latest": "sha256:" + D1}
        stats = _get(base + "/_fake/stats")
        assert stats["total"] == 2 and stats["requests"] == {"GET /repos/ns/app/tags": 2} and len(sleeps) == 1
        _post(base + "/_fake/stats/reset", {})
        assert _get(base + "/_fake/stats")["total"] == 0
        assert _get(base + "/_fake/faults") == {"faults": []}
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()


def test_fake_counts_faulted_requests_per_action_and_repo(fake):
    """Stats count every API request, including faulted ones, and reset to zero."""
    fake.inject("throttle", count=1, action="GetRepoTags")
    make(fake).latest(APP, ["latest"])
    assert fake.stats()["actions"] == {"GetRepoTags": 2} and fake.stats()["repos"] == {"ns/app": 2}
    fake.reset_stats()
    assert fake.stats()["total"] == 0


def test_a_wrong_secret_says_what_to_fix_in_the_error_itself(fake):
    """What `once`, the logs and notifications show carries the hint `check --online` has."""
    with pytest.raises(RegistryError) as e:
        make(fake, access_key_secret="wrong-secret-value").latest(APP, ["latest"])
    assert "the AccessKey secret does not match its ID: check ALIBABA_CLOUD_ACCESS_KEY_SECRET" in str(e.value)
