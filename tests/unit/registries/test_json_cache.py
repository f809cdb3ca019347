"""The state_dir caches of the ACR adapter: read once, read again whenever the file changes."""

from __future__ import annotations

import json
from pathlib import Path

from agent.registries.acr_instances import JsonCache


def test_a_cache_file_is_read_again_after_anyone_rewrites_it(tmp_path: Path) -> None:
    path = tmp_path / "acr-instances.json"
    mine, theirs = JsonCache(path), JsonCache(path)  # theirs: another agent process on the same state_dir
    assert mine.load() == {}
    theirs.put("a.example.com", "cri-1")
    assert mine.load() == {"a.example.com": "cri-1"}
    got = mine.load()
    got["b"] = "changed by the caller"  # a copy: the cache keeps what the file holds
    assert mine.load() == {"a.example.com": "cri-1"}
    theirs.put("a.example.com", "cri-2")  # same size, same second: a new file all the same
    assert mine.load() == {"a.example.com": "cri-2"}
    path.write_text("not json")
    assert mine.load() == {}
    path.write_text(json.dumps(["a list"]))
    assert mine.load() == {}
    path.unlink()
    assert mine.load() == {}
