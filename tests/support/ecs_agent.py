"""Test-only entry point: the agent CLI with alibabacloud-credentials' ECS metadata host on loopback.

    CR_TEST_ECS_METADATA=127.0.0.1:PORT python -m tests.support.ecs_agent check --online -c agent.toml

The library keeps the host (100.100.100.200) in a private attribute of EcsRamRoleCredentialsProvider and
has no setting for it: every instance made here gets the loopback one instead, wherever the chain makes it
(the default chain, a CLI profile in EcsRamRole mode, a credentials file). If the attribute is not what
this expects, the provider refuses to start rather than ask the real address. Tests also point HTTP_PROXY
at the same loopback server, so a request the patch missed would still stay on this machine.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from agent.cli import commands as cli

_HOST_ATTR = "_EcsRamRoleCredentialsProvider__metadata_service_host"


def main(argv: list[str]) -> int:
    host = os.environ["CR_TEST_ECS_METADATA"]
    if not host.startswith("127."):
        raise SystemExit(f"CR_TEST_ECS_METADATA must be a loopback host:port, got {host!r}")
    from alibabacloud_credentials.provider import ecs_ram_role

    cls = ecs_ram_role.EcsRamRoleCredentialsProvider
    init = cls.__init__

    def on_loopback(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if getattr(self, _HOST_ATTR, None) != "100.100.100.200":
            raise RuntimeError(
                "alibabacloud-credentials changed how it keeps the metadata host; fix this seam"
            )
        setattr(self, _HOST_ATTR, host)

    cls.__init__ = on_loopback
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
