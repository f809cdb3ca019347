"""The Alibaba Cloud regions where Container Registry runs, to catch a misspelt region in a host name.

Region ids from Alibaba Cloud's region list (help.aliyun.com, "Regions and zones"); a region opened
after this list was written is only warned about, never refused.
"""

from __future__ import annotations

import difflib
import re

REGIONS = (
    "cn-qingdao", "cn-beijing", "cn-zhangjiakou", "cn-huhehaote", "cn-wulanchabu", "cn-hangzhou",
    "cn-shanghai", "cn-nanjing", "cn-fuzhou", "cn-wuhan-lr", "cn-shenzhen", "cn-heyuan", "cn-guangzhou",
    "cn-chengdu", "cn-hongkong", "cn-shanghai-finance-1", "cn-shenzhen-finance-1", "cn-beijing-finance-1",
    "cn-north-2-gov-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2",
    "ap-southeast-3", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ap-south-1", "us-east-1",
    "us-west-1", "eu-west-1", "eu-central-1", "me-east-1", "me-central-1", "na-south-1",
)  # fmt: skip


def region_problem(region: str) -> tuple[str, str] | None:
    """None for a known region; else ("problem" or "warning", text): a problem when it is close to one."""
    if region in REGIONS:
        return None
    close = difflib.get_close_matches(region, REGIONS, n=1, cutoff=0.8)
    if close and _stem(close[0]) != _stem(region):  # cn-hangzou; but ap-southeast-9 may be a new region
        return "problem", f"unknown region {region!r}: did you mean {close[0]!r}?"
    if close:
        return (
            "warning",
            f"region {region!r} is not in the list this version knows: did you mean {close[0]!r}?",
        )
    return "warning", f"region {region!r} is not in the list this version knows ({', '.join(REGIONS[:6])}, …)"


def _stem(region: str) -> str:
    return re.sub(r"-?\d+$", "", region)
