"""What a user can do about an ACR answer: the RAM policy, a RAM user without a registry, a wrong clock."""

from __future__ import annotations

import email.utils
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from agent.registries.aliyun_sdk import CA_BUNDLE_ENV

RAM_POLICY = (
    '{"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["cr:Get*", "cr:List*", '
    '"cr:PullRepository"], "Resource": "acs:cr:*:*:*"}]}'
)
RAM_HINT = (
    "grant the RAM user read and pull access to Container Registry: attach "
    f"AliyunContainerRegistryReadOnlyAccess, or this policy: {RAM_POLICY} (docs/acr.md)"
)
PULL_HINT = (
    'the temporary password carries the RAM user\'s permissions: add "cr:PullRepository" beside '
    f'"cr:Get*" and "cr:List*": {RAM_POLICY} (docs/acr.md)'
)
USER_HINT = (
    "this RAM user has no Container Registry of its own yet: sign in to the Alibaba Cloud console once "
    "as this RAM user, open Container Registry and set a registry password"
)
CLOCK_CODES = ("InvalidTimeStamp", "SignatureNonceUsed")
# code prefix → what to do; said in the error itself, so `once`, logs and notifications carry it
HINTS = {
    "InvalidAccessKeyId": "the AccessKey ID is unknown: check ALIBABA_CLOUD_ACCESS_KEY_ID / [aliyun] access_key_id",
    "SignatureDoesNotMatch": "the AccessKey secret does not match its ID: check ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "InvalidAccessKeySecret": "the AccessKey secret does not match its ID: check ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "InvalidSecurityToken": "the STS token is wrong or expired: renew ALIBABA_CLOUD_SECURITY_TOKEN",
    "NoPrivilege": RAM_HINT,
    "Forbidden.RAM": RAM_HINT,
    "TLS_UNTRUSTED": f"for a private CA set [aliyun] ca_file or {CA_BUNDLE_ENV}",
}


def hint(code: str | None, clock: Callable[[], float | None] = lambda: None) -> str:
    """The hint for an API error code, or "". `clock` measures the local clock's offset (seconds ahead)."""
    code = code or ""
    table = next((h for prefix, h in HINTS.items() if code.startswith(prefix)), "")
    if table:
        return table
    if code == "USER_NOT_EXIST":
        return USER_HINT
    if code.startswith(CLOCK_CODES):
        offset = clock()
        if offset is None:
            return "the request's time was refused: check the local clock (NTP: chrony or systemd-timesyncd)"
        side = "ahead of" if offset > 0 else "behind"
        return (
            f"the local clock is {abs(offset):.0f} s {side} the API's (its Date header): set the time right "
            "(NTP: chrony or systemd-timesyncd); ACR refuses requests more than 15 minutes off"
        )
    return ""


def clock_offset(url: str, verify: str | bool, direct: bool, timeout: float = 5.0) -> float | None:
    """Local time minus the server's `Date` header, from one unsigned HEAD of `url`; None if unknown."""
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=context)]
    if direct:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    start = time.time()
    try:
        with opener.open(urllib.request.Request(url + "/", method="HEAD"), timeout=timeout) as resp:
            date = resp.headers.get("Date")
    except urllib.error.HTTPError as e:
        date = e.headers.get("Date")
    except OSError:
        return None
    try:
        server = email.utils.parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        return None
    return None if server is None else (start + time.time()) / 2 - server
