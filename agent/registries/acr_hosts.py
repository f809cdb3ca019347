"""From an image's registry host to the ACR API to ask: region, edition, and how to find the instance.

Pure: no I/O. docs/acr.md has the table of host forms and the API calls made for each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.choices import Edition

_R = r"(?P<region>[a-z]{2}-[a-z0-9-]+)"
_FORMS = (
    ("personal", re.compile(rf"registry(-vpc|-internal|-intl|-intl-vpc)?\.{_R}\.aliyuncs\.com")),
    ("crpi", re.compile(rf"crpi-[a-z0-9]+(-vpc)?\.{_R}\.personal\.cr\.aliyuncs\.com")),
    ("enterprise", re.compile(rf"(?P<name>[a-z0-9][a-z0-9-]*?)-registry(-vpc)?\.{_R}\.cr\.aliyuncs\.com")),
)
KNOWN_FORMS = (
    "registry[-vpc|-internal|-intl|-intl-vpc].<region>.aliyuncs.com (personal edition); "
    "crpi-<id>[-vpc].<region>.personal.cr.aliyuncs.com (personal edition, newer instances); "
    "<name>-registry[-vpc].<region>.cr.aliyuncs.com (enterprise edition); "
    "registry.aliyuncs.com (followed through the registry); "
    "a custom domain with a region (the watch entry's or [aliyun]'s) and instance_id (enterprise) or alone (personal)"
)


@dataclass(frozen=True)
class AcrHost:
    """What a registry host says about the API behind it."""

    host: str
    form: str  # personal, crpi, enterprise, custom, alias (registry.aliyuncs.com: no region)
    region: str
    edition: Edition
    instance_name: str | None = None  # enterprise system domains: <name>-registry...
    instance_id: str | None = None  # given in the config (watch entry or [aliyun])

    @property
    def api_host(self) -> str:
        return f"cr.{self.region}.aliyuncs.com"

    @property
    def vpc(self) -> bool:
        """A VPC registry host (registry-vpc., -registry-vpc., crpi-…-vpc.): its API is cr-vpc.<region>."""
        return "-vpc." in self.host.lower()


def parse_host(
    host: str,
    *,
    region: str | None = None,
    instance_id: str | None = None,
    edition: Edition | None = None,
    default_instance_id: str | None = None,
) -> AcrHost:
    """Map `host` to an AcrHost. `region`/`edition` only matter for custom domains.

    `instance_id` (a watch entry's) must fit the host; `default_instance_id` ([aliyun]'s) applies
    to enterprise hosts only. Raises ValueError naming the forms it knows.
    """
    name = host.lower().split(":")[0] if not host.startswith("[") else host.lower()
    name = name.removesuffix(".")  # a fully qualified name
    if name == "registry.aliyuncs.com":  # kubeadm's mirror alias: no region to ask an API in
        return AcrHost(host, "alias", "", Edition.PERSONAL)
    for form, pattern in _FORMS:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        found = m.groupdict()
        if form == "enterprise":
            chosen = instance_id or default_instance_id
            return AcrHost(host, form, found["region"], Edition.ENTERPRISE, found["name"], chosen)
        if instance_id:
            raise ValueError(f"{host} is a personal edition host: instance_id does not apply to it")
        return AcrHost(host, form, found["region"], Edition.PERSONAL)
    if not region:
        raise ValueError(
            f"cannot tell the ACR region and edition from the host {host!r}; known forms: {KNOWN_FORMS}"
        )
    instance_id = instance_id or default_instance_id
    if instance_id or edition is Edition.ENTERPRISE:
        if not instance_id:
            raise ValueError(f"{host} is a custom domain: the enterprise edition needs instance_id (cri-...)")
        return AcrHost(host, "custom", region, Edition.ENTERPRISE, None, instance_id)
    return AcrHost(host, "custom", region, Edition.PERSONAL)
