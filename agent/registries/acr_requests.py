"""The ACR API requests the adapter sends, built from our values (aliyun.py sends them, with retries)."""

from __future__ import annotations

from collections.abc import Callable

from aliyunsdkcore.request import AcsRequest
from aliyunsdkcr.request.v20160607 import GetRepoTagsRequest
from aliyunsdkcr.request.v20181201 import GetAuthorizationTokenRequest as EnterpriseToken
from aliyunsdkcr.request.v20181201 import GetRepositoryRequest, ListRepoTagRequest

from agent.model import RepoKey

Page = Callable[[int, int], AcsRequest]  # (page number, page size) -> the request for that page


def personal_tags(repo: RepoKey) -> Page:
    def page_request(page: int, size: int) -> AcsRequest:
        req = GetRepoTagsRequest.GetRepoTagsRequest()
        req.set_RepoNamespace(repo.namespace)
        req.set_RepoName(repo.name)
        req.set_Page(page)
        req.set_PageSize(size)
        return req

    return page_request


def enterprise_tags(instance_id: str | None, repo_id: str) -> Page:
    def page_request(page: int, size: int) -> AcsRequest:
        req = ListRepoTagRequest.ListRepoTagRequest()
        req.set_InstanceId(instance_id)
        req.set_RepoId(repo_id)
        req.set_PageNo(page)
        req.set_PageSize(min(size, 100))
        return req

    return page_request


def repository(instance_id: str | None, repo: RepoKey) -> Callable[[], AcsRequest]:
    def request() -> AcsRequest:
        req = GetRepositoryRequest.GetRepositoryRequest()
        req.set_InstanceId(instance_id)
        req.set_RepoNamespaceName(repo.namespace)
        req.set_RepoName(repo.name)
        return req

    return request


def enterprise_token(instance_id: str | None) -> Callable[[], AcsRequest]:
    def request() -> AcsRequest:
        req = EnterpriseToken.GetAuthorizationTokenRequest()
        req.set_InstanceId(instance_id)
        return req

    return request
