"""The ACR test world: real ACR host names on loopback, behind a test CA. Standard library only.

scripts/dev-env.sh runs `python3 -m tests.support.acr_world hosts|sans|registry-hosts` to write
/etc/hosts lines, the server certificate's names and /etc/docker/certs.d/<host>/ca.crt.
"""

from __future__ import annotations

import os
import sys

API_IP = "127.0.0.2"  # cr.<region>.aliyuncs.com: the fake ACR API, TLS on 443
REGISTRY_IP = "127.0.0.3"  # every registry host: a TLS front for the local docker-registry, on 443
VPC_API_IP = "127.0.0.4"  # cr-vpc.<region>.aliyuncs.com: the fake ACR's VPC endpoint, when it serves one
ALIAS = "registry.aliyuncs.com"  # the region-less alias (kubeadm's mirror): followed through the registry
REGIONS = ("cn-hangzhou", "cn-shanghai", "cn-beijing")
PERSONAL_PREFIXES = ("registry", "registry-vpc", "registry-internal", "registry-intl", "registry-intl-vpc")
# Enterprise instances: id -> (instance name, region, custom (USER) domains)
INSTANCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cri-acmesh0000000001": ("acme", "cn-shanghai", ("images.acme.test",)),
    "cri-betash0000000002": ("beta", "cn-shanghai", ()),
    "cri-acmebj0000000003": ("acme", "cn-beijing", ()),
}
CRPI = "crpi-k3x9test"  # a newer personal instance, in cn-hangzhou; the 2016 API does not serve it
CRPI_REGION = "cn-hangzhou"
TLS_DIR = os.path.join(os.environ.get("CR_TEST_WORK", "/var/lib/cr-agent-test"), "tls")
CA_FILE = os.path.join(TLS_DIR, "ca.crt")
CERT_FILE = os.path.join(TLS_DIR, "server.crt")
KEY_FILE = os.path.join(TLS_DIR, "server.key")


def api_host(region: str) -> str:
    return f"cr.{region}.aliyuncs.com"


def vpc_api_host(region: str) -> str:
    return f"cr-vpc.{region}.aliyuncs.com"


def personal_hosts(region: str) -> list[str]:
    return [f"{p}.{region}.aliyuncs.com" for p in PERSONAL_PREFIXES]


def instance_hosts(instance_id: str) -> list[str]:
    name, region, custom = INSTANCES[instance_id]
    return [
        f"{name}-registry.{region}.cr.aliyuncs.com",
        f"{name}-registry-vpc.{region}.cr.aliyuncs.com",
    ] + list(custom)


def crpi_hosts() -> list[str]:
    return [
        f"{CRPI}.{CRPI_REGION}.personal.cr.aliyuncs.com",
        f"{CRPI}-vpc.{CRPI_REGION}.personal.cr.aliyuncs.com",
    ]


def registry_hosts() -> list[str]:
    out = [h for r in REGIONS for h in personal_hosts(r)]
    out += [h for i in INSTANCES for h in instance_hosts(i)]
    return out + crpi_hosts() + [ALIAS]


def scope_of(host: str) -> str | None:
    """Which token scope a registry host belongs to: "personal:<region>" or "instance:<id>"."""
    host = host.lower().split(":")[0]
    for region in REGIONS:
        if host in personal_hosts(region):
            return f"personal:{region}"
    if host in crpi_hosts():
        return f"personal:{CRPI_REGION}"
    if host == ALIAS:
        return "alias"  # no API issues tokens for it
    for instance_id in INSTANCES:
        if host in instance_hosts(instance_id):
            return f"instance:{instance_id}"
    return None


def hosts_lines() -> list[str]:
    lines = [f"{API_IP} {api_host(r)}" for r in REGIONS] + [
        f"{VPC_API_IP} {vpc_api_host(r)}" for r in REGIONS
    ]
    return lines + [f"{REGISTRY_IP} {h}" for h in registry_hosts()]


HOSTS_BEGIN = "# cr-agent-test begin (written by scripts/dev-env.sh)"
HOSTS_END = "# cr-agent-test end"


def edit_hosts(path: str, add: bool) -> bool:
    """Put our block at the end of `path` (or take it out); True when the file changed.

    Lines are matched exactly; the file is rewritten in place (it may be a bind mount).
    """
    with open(path) as f:
        old = f.read().splitlines()
    kept, inside = [], False
    for line in old:
        if line == HOSTS_BEGIN:
            inside = True
        elif line == HOSTS_END and inside:
            inside = False
        elif not inside:
            kept.append(line)
    new = kept + ([HOSTS_BEGIN, *hosts_lines(), HOSTS_END] if add else [])
    if new == old:
        return False
    if not any(line.split()[:1] == ["127.0.0.1"] for line in new) and any(
        line.split()[:1] == ["127.0.0.1"] for line in old
    ):
        raise SystemExit(f"refusing to write {path}: the localhost line would be lost")
    with open(path, "r+") as f:
        f.seek(0)
        f.write("\n".join(new) + "\n")
        f.truncate()
    return True


def main(argv: list[str]) -> int:
    what = argv[0] if argv else ""
    if what in ("hosts-add", "hosts-clean"):
        changed = edit_hosts(argv[1] if len(argv) > 1 else "/etc/hosts", add=what == "hosts-add")
        print("changed" if changed else "unchanged")
    elif what == "hosts":
        print("\n".join(hosts_lines()))
    elif what == "sans":
        apis = [api_host(r) for r in REGIONS] + [vpc_api_host(r) for r in REGIONS]
        print(",".join(f"DNS:{h}" for h in apis + registry_hosts()))
    elif what == "registry-hosts":
        print("\n".join(registry_hosts()))
    else:
        print(
            "usage: python3 -m tests.support.acr_world hosts|hosts-add|hosts-clean|sans|registry-hosts",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
