"""ACR's trigger (触发器) payload, as documented (see ../shared/reference/aliyun-cr.md)."""

from __future__ import annotations

import secrets
from typing import Any


def acr_payload(
    namespace: str = "shop", name: str = "web", tag: str = "latest", digest: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A push of `namespace/name:tag`; a made-up digest unless one is given; `extra` adds top-level fields."""
    payload: dict[str, Any] = {
        "push_data": {
            "digest": digest or "sha256:" + secrets.token_hex(32),
            "pushed_at": "2016-11-29 12:25:46",
            "tag": tag,
        },
        "repository": {
            "date_created": "2016-10-28 21:31:42",
            "name": name,
            "namespace": namespace,
            "region": "cn-hangzhou",
            "repo_authentication_type": "NO_CERTIFIED",
            "repo_full_name": f"{namespace}/{name}",
            "repo_origin_type": "NO_CERTIFIED",
            "repo_type": "PRIVATE",
        },
    }
    payload.update(extra)
    return payload
