"""Enterprise instances found by host: ListInstance (by name) confirmed by ListInstanceEndpoint.

Answers are cached in state_dir (acr-instances.json): an instance id never changes for a host.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from aliyunsdkcore.request import AcsRequest
from aliyunsdkcr.request.v20181201 import ListInstanceEndpointRequest, ListInstanceRequest
from loguru import logger

from agent.errors import RegistryError
from agent.registries.acr_hosts import AcrHost
from agent.registries.aliyun import AliyunRegistry


class JsonCache:
    """A small JSON object in a file, rewritten atomically; unreadable files count as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._read: tuple[tuple[int, int, int], dict[str, Any]] | None = None  # (file stamp, data)

    def load(self) -> dict[str, Any]:
        """The file's object; read again only when the file changed (each lookup asks, several times)."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # a rewrite is a new file: a new inode
            read = self._read
            if read is None or read[0] != stamp:
                data = json.loads(self.path.read_text())
                read = self._read = (stamp, data if isinstance(data, dict) else {})
        except (OSError, ValueError):
            return {}
        return dict(read[1])

    def put(self, key: str, value: Any) -> None:
        self._update(key, value)

    def drop(self, key: str) -> None:
        self._update(key, None)

    def _update(self, key: str, value: Any) -> None:
        with self._lock:
            data = self.load()
            if data.get(key) == value:
                return
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name)
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            except OSError as e:  # a cache: losing it costs requests, not correctness
                logger.warning("could not write {}: {}", self.path, e)


def find_instance(client: AliyunRegistry, target: AcrHost) -> str:
    """The id of the enterprise instance in `target.region` whose endpoints include `target.host`."""
    name = target.instance_name

    def list_request() -> AcsRequest:
        req = ListInstanceRequest.ListInstanceRequest()
        req.set_PageNo(1)
        req.set_PageSize(100)
        if name:
            req.set_InstanceName(name)
        return req

    body = client.call("ListInstance", f"instances in {target.region}", list_request)
    rows = body.get("Instances")
    rows = rows if isinstance(rows, list) else []
    ids = [
        str(r["InstanceId"])
        for r in rows
        if isinstance(r, dict)
        and isinstance(r.get("InstanceId"), str)
        and (name is None or r.get("InstanceName") == name)
    ]
    for instance_id in ids:
        if target.host.lower() in _domains(client, instance_id):
            logger.info("ACR: {} is enterprise instance {} in {}", target.host, instance_id, target.region)
            return instance_id
    listed = ", ".join(ids) or "none"
    raise RegistryError(
        f"no enterprise instance in {target.region} serves {target.host} (ListInstance named {name!r}: {listed}); "
        "set instance_id in the watch entry or in [aliyun]",
        code="INSTANCE_NOT_FOUND",
    )


def _domains(client: AliyunRegistry, instance_id: str) -> set[str]:
    def request() -> AcsRequest:
        req = ListInstanceEndpointRequest.ListInstanceEndpointRequest()
        req.set_InstanceId(instance_id)
        return req

    body = client.call("ListInstanceEndpoint", instance_id, request)
    out = set()
    for endpoint in body.get("Endpoints") or []:
        for domain in (endpoint.get("Domains") or []) if isinstance(endpoint, dict) else []:
            if isinstance(domain, dict) and isinstance(domain.get("Domain"), str):
                out.add(domain["Domain"].lower())
    return out
