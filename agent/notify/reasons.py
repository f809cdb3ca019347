"""A failure's reason in Chinese for the common causes; the raw code stays in brackets, the raw text below."""

from __future__ import annotations

import re

_CODE = re.compile(r"\[([A-Za-z][A-Za-z0-9_.]*)\]")

# error code (prefix) → 中文
CODES = {
    "SignatureDoesNotMatch": "AccessKey Secret 与 ID 不匹配，请检查 ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "InvalidAccessKeySecret": "AccessKey Secret 与 ID 不匹配，请检查 ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "InvalidAccessKeyId": "AccessKey ID 不存在，请检查 ALIBABA_CLOUD_ACCESS_KEY_ID",
    "InvalidSecurityToken": "STS 令牌无效或已过期，请更新 ALIBABA_CLOUD_SECURITY_TOKEN",
    "NoPrivilege": "RAM 子账号没有容器镜像服务的读权限，请授权 AliyunContainerRegistryReadOnlyAccess",
    "Forbidden.RAM": "RAM 子账号没有容器镜像服务的读权限，请授权 AliyunContainerRegistryReadOnlyAccess",
    "REPO_NOT_EXIST": "仓库不存在：请检查地域、命名空间和仓库名",
    "UNAUTHORIZED": '镜像仓库要求登录：在 agent 所在机器上 docker login，或在配置中添加 [registry_auth."主机"]',
    "DENIED": "镜像仓库拒绝访问：请检查拉取凭证和权限",
    "TOOMANYREQUESTS": "请求过于频繁，已被限流，下一轮会重试",
    "Throttling": "请求过于频繁，已被限流，下一轮会重试",
    "TLS_UNTRUSTED": "TLS 证书不受信任：私有 CA 请设置 [aliyun] ca_file",
    "NOT_FOUND": "镜像仓库中没有这个仓库或标签",
}
# a phrase of the English reason → 中文 (first match wins)
PHRASES = (
    ("pull failed", "拉取镜像失败，未做任何改动"),
    ("not healthy within", "新容器没有在期限内通过健康检查，已回滚"),
    ("HEALTHCHECK reports unhealthy", "新容器的 HEALTHCHECK 报告 unhealthy，已回滚"),
    ("the new container exited", "新容器启动后退出，已回滚"),
    ("the new container restarted", "新容器不断重启，已回滚"),
    ("Docker is not running", "Docker 没有运行，或 socket 不在默认位置（设置 DOCKER_HOST）"),
    ("not found", "容器或标签不存在"),
    ("is quarantined", "这个 digest 已被隔离（之前回滚过）"),
    ("restoring the old container failed", "恢复旧容器也失败了，请立即检查"),
)


def in_chinese(reason: str) -> tuple[str, str | None]:
    """(the reason to show, the raw text to show below it or None) for a Chinese message."""
    m = _CODE.search(reason)
    code = m.group(1) if m else None
    if code:
        zh = next((v for k, v in CODES.items() if code.startswith(k)), None)
        if zh:
            return f"{zh} [{code}]", reason
    zh = next((v for k, v in PHRASES if k in reason), None)
    return (zh, reason) if zh else (reason, None)
