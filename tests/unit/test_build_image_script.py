"""scripts/build-image.sh takes a tag argument with a documented default, and refuses a bad one before
doing any work (issue 21 item 8). The build itself: tests/integration/test_image.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-image.sh"


def run(*args: str, stub_dir: Path = Path("/tmp")) -> subprocess.CompletedProcess[str]:
    """The script with a `docker` that fails first on PATH: a run past the argument checks builds nothing."""
    stub = Path(tempfile.mkdtemp(prefix="crt-build-image-", dir=stub_dir))
    (stub / "docker").write_text("#!/bin/sh\necho docker-stub-called >&2\nexit 99\n")
    (stub / "docker").chmod(0o755)
    try:
        return subprocess.run(["/bin/bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30,
                              env={"PATH": f"{stub}:/usr/bin:/bin"})  # fmt: skip
    finally:
        shutil.rmtree(stub)


def test_help_names_the_tag_argument_its_default_and_the_builder_notice() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "scripts/build-image.sh [TAG]" in done.stdout and "defaults to cr-agent:dev" in done.stdout
    assert "legacy builder" in done.stdout and "harmless" in done.stdout


@pytest.mark.parametrize("tag", ["Bad Tag", "UPPER:1", "cr-agent:", "x@sha256:abc", "-rf"])
def test_a_bad_tag_is_refused_before_any_work(tag: str) -> None:
    done = run(tag)
    assert done.returncode == 2 and f"not a valid image tag: '{tag}'" in done.stderr, done.stderr
    assert "docker-stub-called" not in done.stderr


def test_two_arguments_are_refused() -> None:
    done = run("a:1", "b:2")
    assert done.returncode == 2 and "usage: scripts/build-image.sh [TAG]" in done.stderr


def test_the_docs_give_the_default_tag_and_the_argument() -> None:
    for doc in ("README.md", "docs/operations.md", "docs/zh/README.md"):
        text = (ROOT / doc).read_text()
        assert re.search(r"scripts/build-image\.sh( \[TAG\]|`? [^\n]*cr-agent:dev)", text), doc
        assert "scripts/build-image.sh [TAG]" in text or "build-image.sh cr-agent:" in text, doc
