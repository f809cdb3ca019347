"""The labels a replacement gets beyond its source's: pure, no I/O."""

from __future__ import annotations

import re

IMAGE_LABEL = "cr-agent.image"  # the tag a container follows, kept once it runs a digest
COMPOSE_IMAGE = "com.docker.compose.image"  # Compose v2 compares it with the image id (mustRecreate)
_ID = re.compile(r"^[0-9a-f]{64}$")


def is_tag_reference(ref: str) -> bool:
    """`name[:tag]`, not an image id or a digest reference."""
    return bool(ref) and "@" not in ref and not ref.startswith("sha256:") and not _ID.match(ref)


def relabel(
    labels: dict[str, str], created_with: str, new_image_id: str, new_ref: str = ""
) -> dict[str, str]:
    """The labels of a replacement: the tag it follows is remembered (the new one's reference when it
    is created from a tag, else the source's), and Compose v2's `com.docker.compose.image` becomes the
    new image id, which is what its next `up` compares."""
    out = dict(labels)
    if is_tag_reference(new_ref):
        out[IMAGE_LABEL] = new_ref
    elif IMAGE_LABEL not in out and is_tag_reference(created_with):
        out[IMAGE_LABEL] = created_with
    if COMPOSE_IMAGE in out and new_image_id:
        out[COMPOSE_IMAGE] = new_image_id
    return out
