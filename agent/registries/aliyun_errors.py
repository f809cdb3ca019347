"""How the ACR adapter words a failure: SDK exceptions and error bodies become RegistryErrors, secrets redacted.

`temporary` marks what is worth a retry: throttling, 5xx, the SDK's own HTTP errors, a non-JSON answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException

from agent.errors import RegistryError
from agent.registries.acr_hints import hint
from agent.registries.aliyun_sdk import _SENSITIVE, CA_BUNDLE_ENV, _field
from agent.secret import redact

_TEMPORARY_CODES = {"InternalError", "ServiceUnavailable", "UnknownError", "SDK.HttpError"}


class ErrorWords:
    """The errors of one API client: `host` names its endpoint; registered secrets (agent.secret) are never said."""

    def __init__(self, host: str, clock: Callable[[], float | None] = lambda: None) -> None:
        self.host = host
        self.clock = clock  # the local clock's offset from the API's, for a refused timestamp

    def client(self, where: str, e: ClientException) -> RegistryError:
        """The SDK failed before an answer: TLS, connection, timeout."""
        code = e.get_error_code()
        # Drop the URL: it is long and may hold the STS token.
        msg = re.sub(r" with url: \S+", "", str(e.get_error_msg()))
        if "CERTIFICATE_VERIFY_FAILED" in msg or "SSLError" in msg:
            detail = re.sub(r"[()'\"]", "", msg.rsplit("CERTIFICATE_VERIFY_FAILED]", 1)[-1]).strip()[:120]
            msg = (
                f"the TLS certificate of {self.host} is not trusted ({detail or 'TLS error'}); "
                f"for a private CA set [aliyun] ca_file or {CA_BUNDLE_ENV}"
            )
            return self.error(f"{where}: {msg}", "TLS_UNTRUSTED", False)
        return self.error(f"{where}: {msg}", code, code in _TEMPORARY_CODES)

    def server(self, where: str, e: ServerException) -> RegistryError:
        """An error answer the SDK parsed, or one it could not (lower-case keys, no JSON at all)."""
        status, code, msg = e.get_http_status(), e.get_error_code(), e.get_error_msg() or ""
        request_id = e.get_request_id()
        if code == "SDK.UnknownServerError":  # lower-case body, or no JSON at all
            raw = msg.removeprefix("ServerResponseBody: ")
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            code, msg = _field(parsed, "code"), _field(parsed, "message")
            request_id = _field(parsed, "requestId")
            if not isinstance(code, str):
                snippet = " ".join(raw.split())[:120]
                temporary = (status or 0) >= 500
                return self.error(
                    f"unexpected answer from {where}: HTTP {status} {snippet!r}", None, temporary
                )
        return self._build(where, code, str(msg or ""), status, request_id)

    def body(self, where: str, body: dict[str, Any]) -> RegistryError | None:
        """The error a 200 answer carries in its body (IsSuccess false, a Code other than success), or None."""
        code = _field(body, "Code")
        if _field(body, "IsSuccess") is False or (
            isinstance(code, str) and code.lower() not in ("success", "")
        ):
            msg, request_id = _field(body, "Message"), _field(body, "RequestId")
            return self._build(
                where, str(code or "UnknownError"), str(msg or "request failed"), None, request_id
            )
        return None

    def _build(self, where: str, code: str, msg: str, status: int | None, request_id: Any) -> RegistryError:
        msg = re.split(r"\.? server string to sign is", msg, maxsplit=1)[0]  # long, and not for operators
        temporary = (
            code.startswith("Throttling") or code in _TEMPORARY_CODES or (status or 0) >= 500 or status == 429
        )
        text = f"{where}: " + (f"HTTP {status}: " if status else "") + (msg or "request failed")
        if isinstance(request_id, str) and request_id:
            text += f" (request id {request_id})"
        advice = hint(code, self.clock)
        text += f" — hint: {advice}" if advice else ""
        return self.error(text, code, temporary)

    def error(self, message: str, code: str | None, temporary: bool) -> RegistryError:
        return RegistryError(_SENSITIVE.sub(r"\1***", redact(message)), code=code, temporary=temporary)


def expired(code: str | None) -> bool:
    """InvalidSecurityToken.Expired and its kin: the temporary key ran out (a fresh one may be had)."""
    text = (code or "").lower()
    return "expired" in text and ("token" in text or "accesskey" in text)
