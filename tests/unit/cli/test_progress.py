"""PullBars: bytes and layers from the engine's progress messages, drawn by rich."""

from __future__ import annotations

import io

from rich.console import Console

from agent.cli.progress import PullBars
from agent.runtimes.pull import PullProgress

REF = "127.0.0.1:5000/ns/web@sha256:" + "a" * 64


def test_bytes_and_layers_from_the_messages() -> None:
    out = io.StringIO()
    bars = PullBars(Console(file=out, force_terminal=True, width=120))
    progress = PullProgress()
    with bars:
        for msg in [
            {"status": "Pulling from ns/web", "id": "latest"},
            {"status": "Pulling fs layer", "progressDetail": {}, "id": "l1"},
            {"status": "Already exists", "progressDetail": {}, "id": "l0"},
            {
                "status": "Downloading",
                "progressDetail": {"current": 1_000_000, "total": 4_000_000},
                "id": "l1",
            },
            {"status": "Download complete", "progressDetail": {}, "id": "l1"},
            {"status": "Extracting", "progressDetail": {"current": 5, "total": 9}, "id": "l1"},
            {"status": "Pull complete", "progressDetail": {}, "id": "l1"},
            {"status": "Digest: sha256:" + "a" * 64},
        ]:
            progress.feed(msg)
            bars(REF, progress)
        (task,) = bars.progress.tasks
        assert (task.completed, task.total, task.fields["layers"]) == (4_000_000, 4_000_000, "2/2 layers")
    assert "pull web" in out.getvalue() and "4.0/4.0 MB" in out.getvalue()


def test_one_bar_per_image_and_none_before_a_layer_is_seen() -> None:
    bars = PullBars(Console(file=io.StringIO(), force_terminal=True))
    bars(REF, PullProgress())
    assert bars.progress.tasks == []
    for ref in (REF, REF.replace("web", "api")):
        p = PullProgress()
        p.feed({"status": "Downloading", "progressDetail": {"current": 1, "total": 2}, "id": "x"})
        bars(ref, p)
    assert [t.description for t in bars.progress.tasks] == ["pull web", "pull api"]
