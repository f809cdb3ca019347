"""ACR build records, as the API answers them (agent/notify/buildwatch.py reads them).

Personal: GetRepoBuildList (`GET /repos/{ns}/{name}/build`). Enterprise: ListRepoBuildRecord, with the
repository id from GetRepository (cached by the client). One request per repository per pass.
`AliyunRegistry.builds` sends these requests; `AcrRegistry.builds` picks the client for the host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aliyunsdkcore.request import AcsRequest
from aliyunsdkcr.request.v20160607 import GetRepoBuildListRequest
from aliyunsdkcr.request.v20181201 import ListRepoBuildRecordRequest

from agent.choices import Edition
from agent.model import RepoKey

PAGE_SIZE = 10  # the newest builds; the API lists newest first
CONSOLE = "https://cr.console.aliyun.com"

Call = Callable[[str, str, Callable[[], AcsRequest]], dict[str, Any]]  # (action, what, request) -> body


def list_builds(
    call: Call,
    repo_id: Callable[[], str],
    *,
    edition: Edition,
    region: str,
    instance_id: str | None,
    repo: RepoKey,
) -> tuple[Any, str]:
    """(the answer's body, a console link to the repository's builds), with the client's own `call`."""
    if edition is Edition.PERSONAL:

        def personal() -> AcsRequest:
            req = GetRepoBuildListRequest.GetRepoBuildListRequest()
            req.set_RepoNamespace(repo.namespace)
            req.set_RepoName(repo.name)
            req.set_Page(1)
            req.set_PageSize(PAGE_SIZE)
            return req

        body = call("GetRepoBuildList", repo.path, personal)
        return body, f"{CONSOLE}/repository/{region}/{repo.namespace}/{repo.name}/build"
    rid = repo_id()

    def enterprise() -> AcsRequest:
        req = ListRepoBuildRecordRequest.ListRepoBuildRecordRequest()
        req.set_InstanceId(instance_id)
        req.set_RepoId(rid)
        req.set_PageNo(1)
        req.set_PageSize(PAGE_SIZE)
        return req

    body = call("ListRepoBuildRecord", repo.path, enterprise)
    return body, f"{CONSOLE}/{region}/instance/{instance_id}/repository/{rid}/build"
