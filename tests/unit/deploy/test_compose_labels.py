"""Compose v2 leaves a container the agent replaced alone: its two comparisons, on the labels the agent writes.

docker/compose `pkg/compose/convergence.go`, func `(c *convergence) mustRecreate` (v2.29.x, about line 315;
later releases move it to reconcile.go) recreates when either of these differs:

    if actual.Labels[api.ConfigHashLabel] != serviceHash {                                  // comparison 1
    if actual.Labels[api.ImageDigestLabel] != expected.CustomLabels[api.ImageDigestLabel] {  // comparison 2

`serviceHash` is `ServiceHash(service)`: the service as written in the compose file, custom labels excluded.
`expected.CustomLabels[api.ImageDigestLabel]` is set in `getLocalImagesDigests` (pkg/compose/build.go):
`images[name] = info.ID` then `CustomLabels.Add(api.ImageDigestLabel, digest)`: the local image id of the
service's `image:` reference. `api.ConfigHashLabel` is `com.docker.compose.config-hash`,
`api.ImageDigestLabel` is `com.docker.compose.image`.
"""

from __future__ import annotations

from typing import Any

from agent.runtimes.clone import clone_spec
from agent.runtimes.relabel import COMPOSE_IMAGE, IMAGE_LABEL, relabel

CONFIG_HASH = "com.docker.compose.config-hash"
OLD_ID, NEW_ID = "sha256:" + "1" * 64, "sha256:" + "2" * 64
SERVICE_HASH = "9f2c" * 16


def must_recreate(actual_labels: dict[str, str], service_hash: str, local_image_id: str) -> bool:
    """The two comparisons of mustRecreate, as Compose v2 runs them on its next `up -d`."""
    if actual_labels.get(CONFIG_HASH) != service_hash:  # comparison 1
        return True
    return actual_labels.get(COMPOSE_IMAGE) != local_image_id  # comparison 2


def compose_container() -> dict[str, Any]:
    labels = {
        "com.docker.compose.project": "shop",
        "com.docker.compose.service": "web",
        "com.docker.compose.container-number": "1",
        CONFIG_HASH: SERVICE_HASH,
        COMPOSE_IMAGE: OLD_ID,
    }
    return {
        "Id": "c" * 64,
        "Image": OLD_ID,
        "Config": {"Image": "registry.cn-hangzhou.aliyuncs.com/shop/web:latest", "Labels": labels},
        "HostConfig": {"NetworkMode": "shop_default"},
        "NetworkSettings": {"Networks": {"shop_default": {"Aliases": ["web"]}}},
    }


def replacement_labels(src: dict[str, Any], new_image_id: str) -> dict[str, str]:
    spec = clone_spec(src, {"Config": {"Labels": {"org.opencontainers.image.version": "1"}}})
    return relabel(spec.config.get("Labels") or {}, src["Config"]["Image"], new_image_id)


def test_compose_v2_leaves_the_replacement_alone() -> None:
    src = compose_container()
    assert not must_recreate(src["Config"]["Labels"], SERVICE_HASH, OLD_ID)  # before the update: quiet
    labels = replacement_labels(src, NEW_ID)
    assert labels[CONFIG_HASH] == SERVICE_HASH  # comparison 1: the compose file did not change
    assert labels[COMPOSE_IMAGE] == NEW_ID  # comparison 2: the tag now names the new image locally
    assert not must_recreate(labels, SERVICE_HASH, NEW_ID)


def test_without_the_new_image_id_compose_v2_would_recreate_it_again() -> None:
    """What a replacement that only copies the labels leaves (Watchtower #1989): one more recreate."""
    src = compose_container()
    copied = clone_spec(src, {}).config["Labels"]
    assert copied[COMPOSE_IMAGE] == OLD_ID
    assert must_recreate(copied, SERVICE_HASH, NEW_ID)


def test_a_changed_compose_file_still_recreates() -> None:
    labels = replacement_labels(compose_container(), NEW_ID)
    assert must_recreate(labels, "other-hash", NEW_ID)


def test_the_followed_tag_is_remembered_once_and_plain_containers_get_no_compose_label() -> None:
    labels = relabel({"a": "b"}, "127.0.0.1:5000/ns/web:v1", NEW_ID)
    assert labels == {"a": "b", IMAGE_LABEL: "127.0.0.1:5000/ns/web:v1"}
    again = relabel(labels, NEW_ID, "sha256:" + "3" * 64)  # the next replacement runs an id
    assert again == labels
    assert IMAGE_LABEL not in relabel({}, "127.0.0.1:5000/ns/web@sha256:" + "4" * 64, NEW_ID)
    moved = relabel(labels, "127.0.0.1:5000/ns/web:v1", NEW_ID, "127.0.0.1:5000/ns/web:v2")  # a tag pattern
    assert moved[IMAGE_LABEL] == "127.0.0.1:5000/ns/web:v2"
