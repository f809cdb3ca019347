"""Small helpers of the ACR adapter: endpoints, TLS verification, the SDK's log filter, lenient fields."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from aliyunsdkcore.acs_exception.exceptions import ClientException

from agent.errors import RegistryError

CA_BUNDLE_ENV = "ALIBABA_CLOUD_CA_BUNDLE"
# What the SDK may log that carries a secret: STS tokens in URLs/headers, tokens in response bodies.
_SENSITIVE = re.compile(
    r"""(?i)(['"]?(?:SecurityToken|x-acs-security-token|authorizationToken)['"]?\s*[=:]\s*['"]?)[^&\s'",}]+"""
)


class _SdkLogFilter(logging.Filter):
    """Drops the SDK's own error lines (we raise better ones) and redacts tokens from the rest."""

    _DUPLICATES = ("ServerException occurred", "HttpError occurred", "Failed to parse response")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith(self._DUPLICATES):
            return False
        record.msg, record.args = _SENSITIVE.sub(r"\1***", text), None
        return True


for _name in ("aliyunsdkcore.client", "aliyunsdkcore.http.http_response"):
    logging.getLogger(_name).addFilter(_SdkLogFilter())


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """("http"|"https", "host[:port]") from a URL or a bare host; https unless it says http://."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "https", endpoint
    scheme = scheme.lower()
    host = rest.rstrip("/")
    if scheme not in ("http", "https") or not host or "/" in host or "?" in host:
        raise RegistryError(
            f"ACR endpoint must be http(s)://host[:port] or a bare host, got {endpoint!r}", code="CONFIG"
        )
    return scheme, host


def tls_verify(ca_file: str | None) -> str | bool:
    """What to verify API certificates with: ca_file, else $ALIBABA_CLOUD_CA_BUNDLE, else the bundled CAs.

    Never False: an empty variable must not turn verification off (the SDK would pass "" on).
    """
    path = ca_file or os.environ.get(CA_BUNDLE_ENV) or None
    if path is not None and not os.path.isfile(path):
        source = "[aliyun] ca_file" if ca_file else CA_BUNDLE_ENV
        raise RegistryError(f"{source}: no such CA bundle file {path!r}", code="CONFIG")
    return path or True


def _field(obj: Any, *names: str) -> Any:
    """obj[name] for the first name present, matching case-insensitively; None if absent."""
    if not isinstance(obj, dict):
        return None
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_UNREACHABLE = re.compile(
    r"(?i)connection refused|failed to establish a new connection|name ?resolution|name or service not known"
    r"|network is unreachable|no route to host|connecttimeout|connect timeout"
)


def _unreachable(e: ClientException) -> bool:
    """A connection that could not be made (refused, no route, no name), not a slow answer nor a TLS refusal."""
    return e.get_error_code() == "SDK.HttpError" and _UNREACHABLE.search(str(e.get_error_msg())) is not None
