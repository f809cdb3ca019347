"""Every host form of the issue maps to its region, edition and instance; unknown hosts are named."""

from __future__ import annotations

import pytest

from agent.choices import Edition
from agent.registries.acr_hosts import AcrHost, parse_host


@pytest.mark.parametrize(
    ("host", "form", "region", "edition", "name"),
    [
        ("registry.cn-shanghai.aliyuncs.com", "personal", "cn-shanghai", "personal", None),
        ("registry-vpc.cn-beijing.aliyuncs.com", "personal", "cn-beijing", "personal", None),
        ("registry-internal.cn-hangzhou.aliyuncs.com", "personal", "cn-hangzhou", "personal", None),
        ("registry-intl.ap-southeast-1.aliyuncs.com", "personal", "ap-southeast-1", "personal", None),
        ("registry-intl-vpc.eu-central-1.aliyuncs.com", "personal", "eu-central-1", "personal", None),
        ("crpi-k3x9.cn-hangzhou.personal.cr.aliyuncs.com", "crpi", "cn-hangzhou", "personal", None),
        ("crpi-k3x9-vpc.cn-shenzhen.personal.cr.aliyuncs.com", "crpi", "cn-shenzhen", "personal", None),
        ("acme-registry.cn-shanghai.cr.aliyuncs.com", "enterprise", "cn-shanghai", "enterprise", "acme"),
        ("my-co-registry-vpc.cn-beijing.cr.aliyuncs.com", "enterprise", "cn-beijing", "enterprise", "my-co"),
    ],
)
def test_host_forms(host: str, form: str, region: str, edition: str, name: str | None) -> None:
    got = parse_host(host, region="us-west-1")  # a configured region never overrides the host's
    assert (got.form, got.region, got.edition, got.instance_name) == (form, region, edition, name)
    assert got.api_host == f"cr.{region}.aliyuncs.com"


def test_instance_id_overrides_discovery() -> None:
    got = parse_host("acme-registry.cn-shanghai.cr.aliyuncs.com", instance_id="cri-x")
    assert got.instance_id == "cri-x"


def test_custom_domain_needs_region_and_for_enterprise_instance_id() -> None:
    assert parse_host("images.acme.test", region="cn-shanghai", instance_id="cri-x") == AcrHost(
        "images.acme.test", "custom", "cn-shanghai", "enterprise", None, "cri-x"
    )
    assert parse_host("127.0.0.1:5000", region="cn-hangzhou").edition == "personal"
    with pytest.raises(ValueError, match="needs instance_id"):
        parse_host("images.acme.test", region="cn-shanghai", edition=Edition.ENTERPRISE)


@pytest.mark.parametrize("host", ["images.acme.test", "docker.io", "x.cr.aliyuncs.com"])
def test_unmappable_hosts_name_the_known_forms(host: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_host(host)
    assert "known forms" in str(err.value) and "crpi-<id>" in str(err.value) and "-registry" in str(err.value)


def test_instance_id_on_a_personal_host_is_an_error() -> None:
    with pytest.raises(ValueError, match="personal edition host"):
        parse_host("registry.cn-hangzhou.aliyuncs.com", instance_id="cri-x")


def test_the_aliyun_instance_id_applies_to_enterprise_hosts_only() -> None:
    assert parse_host("registry.cn-hangzhou.aliyuncs.com", default_instance_id="cri-x").instance_id is None
    assert (
        parse_host("a-registry.cn-hangzhou.cr.aliyuncs.com", default_instance_id="cri-x").instance_id
        == "cri-x"
    )


@pytest.mark.parametrize(
    "host", ["registry.aliyuncs.com", "REGISTRY.aliyuncs.com.", "registry.aliyuncs.com:443"]
)
def test_the_region_less_alias_is_accepted_and_only_followed_through_the_registry(host: str) -> None:
    from agent.registries.acr_public import registry_only

    got = parse_host(host)
    assert got.form == "alias" and registry_only(got) is not None and "no region" in str(registry_only(got))


@pytest.mark.parametrize(
    ("host", "form"),
    [("registry.cn-shanghai.aliyuncs.com.", "personal"), ("acme-registry.cn-shanghai.cr.aliyuncs.com.", "enterprise"),
     ("crpi-k3x9.cn-hangzhou.personal.cr.aliyuncs.com.", "crpi")],
)  # fmt: skip
def test_a_trailing_dot_is_accepted(host: str, form: str) -> None:
    from agent.model import ImageRef

    assert parse_host(host).form == form
    ref = ImageRef.parse(f"{host}/ns/app:v1")  # the dot is dropped: docker's references have none
    assert ref.host == host.rstrip(".") and str(ref) == f"{host.rstrip('.')}/ns/app:v1"


def test_a_custom_domain_may_name_its_region_per_watch_entry() -> None:
    from agent.choices import Source
    from agent.config.load import parse

    raw = {"watch": [{"container": "a", "image": "images.acme.test/ns/app:v1", "region": "cn-beijing"},
                     {"container": "b", "image": "images.beta.test/ns/app:v1", "region": "nowhere"}]}  # fmt: skip
    from agent.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        parse(raw, {})
    assert "watch[1].region: not a region id: 'nowhere'" in str(err.value)
    raw["watch"].pop()
    (w,) = parse(raw, {}).watches
    assert (w.region, w.source) == ("cn-beijing", Source.ALIYUN)
    assert parse_host(w.image.host, region=w.region).region == "cn-beijing"
