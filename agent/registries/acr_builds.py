"""ACR build records, as the API answers them (agent/buildwatch.py reads them).

Personal: GetRepoBuildList (`GET /repos/{ns}/{name}/build`). Enterprise: ListRepoBuildRecord, with the
repository id from GetRepository (cached by the client). One request per repository per pass.
"""

from __future__ import annotations

import time
from typing import Any

from aliyunsdkcore.request import AcsRequest
from aliyunsdkcr.request.v20160607 import GetRepoBuildListRequest
from aliyunsdkcr.request.v20181201 import ListRepoBuildRecordRequest

from agent.choices import Edition
from agent.errors import RegistryError
from agent.model import RepoKey

PAGE_SIZE = 10  # the newest builds; the API lists newest first
CONSOLE = "https://cr.console.aliyun.com"


def list_builds(registry: Any, repo: RepoKey) -> tuple[Any, str]:
    """(the answer's body, a console link to the repository's builds) through the ACR adapter."""
    client = registry
    if hasattr(
        registry, "target"
    ):  # a router over hosts (region, edition, instance): its client for this host
        try:
            client = registry.client(registry.target(repo.host))
        except ValueError as e:
            raise RegistryError(str(e), code="UNMAPPABLE_HOST") from None
    deadline = time.monotonic() + client._total_timeout
    if client.edition is Edition.PERSONAL:

        def personal() -> AcsRequest:
            req = GetRepoBuildListRequest.GetRepoBuildListRequest()
            req.set_RepoNamespace(repo.namespace)
            req.set_RepoName(repo.name)
            req.set_Page(1)
            req.set_PageSize(PAGE_SIZE)
            return req

        body = client._call("GetRepoBuildList", repo.path, personal, deadline)
        return body, f"{CONSOLE}/repository/{client.region}/{repo.namespace}/{repo.name}/build"
    repo_id = client._repo_id(repo, deadline)

    def enterprise() -> AcsRequest:
        req = ListRepoBuildRecordRequest.ListRepoBuildRecordRequest()
        req.set_InstanceId(client.instance_id)
        req.set_RepoId(repo_id)
        req.set_PageNo(1)
        req.set_PageSize(PAGE_SIZE)
        return req

    body = client._call("ListRepoBuildRecord", repo.path, enterprise, deadline)
    return body, f"{CONSOLE}/{client.region}/instance/{client.instance_id}/repository/{repo_id}/build"
