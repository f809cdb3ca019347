"""After an update: keep the last `keep_images` previous images of a container for rollback, remove older
ones that nothing uses."""

from __future__ import annotations

from loguru import logger

from agent.errors import AgentError
from agent.runtimes import Runtime
from agent.state import State


def prune(runtime: Runtime, state: State, keep: int, container: str, current: str) -> None:
    seen: list[str] = []
    for d in state.history(container, limit=100):
        if (
            d.outcome == "updated"
            and d.old_image_id
            and d.old_image_id not in seen
            and d.old_image_id != current
        ):
            seen.append(d.old_image_id)
    for image_id in seen[keep:]:
        try:
            if runtime.exists_image(image_id) and not runtime.image_in_use(image_id):
                runtime.remove_image(image_id)
                logger.info("{}: removed old image {}", container, image_id[:19])
        except AgentError as e:
            logger.debug("{}: kept old image {}: {}", container, image_id[:19], e)
