"""`--json` keeps its shape: the six fixed keys, then only the optional facts that apply."""

from __future__ import annotations

from agent.model import Rejoined, Report, Result, Status

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMG = "r.example.com/ns/web:latest"
FIXED = ["container", "image", "status", "current_digest", "latest_digest", "error"]


def test_a_plain_result_has_only_the_fixed_keys() -> None:
    out = Result("web", IMG, Status.UP_TO_DATE, A, A).as_json()
    assert out == {"container": "web", "image": IMG, "status": "up_to_date", "current_digest": A,
                   "latest_digest": A, "error": None}  # fmt: skip
    assert list(out) == FIXED


def test_an_update_lists_its_facts_under_their_old_keys() -> None:
    r = Result("web", IMG, Status.UPDATED, A, B, strategy="start-first", container_id="c1", seconds=1.5,
               dependants=(Rejoined("vpn", "restarted"), Rejoined("side", "failed", "boom")))  # fmt: skip
    assert Report((r,)).as_json() == {"results": [{
        "container": "web", "image": IMG, "status": "updated", "current_digest": A, "latest_digest": B,
        "error": None, "strategy": "start-first", "container_id": "c1", "seconds": 1.5,
        "dependants": [{"container": "vpn", "outcome": "restarted", "error": None},
                       {"container": "side", "outcome": "failed", "error": "boom"}],
    }]}  # fmt: skip


def test_a_pin_always_names_the_tags_digest_and_false_flags_are_kept() -> None:
    r = Result(
        "web", IMG, Status.SKIPPED, A, B, "pinned to ...", pinned=True, pin_conflict=True, seen_before=False
    )
    out = r.as_json()
    assert {k: out[k] for k in list(out)[6:]} == {
        "pinned": True, "tag_digest": None, "pin_conflict": True, "seen_before": False
    }  # fmt: skip


def test_every_optional_fact_keeps_its_key() -> None:
    r = Result("web", IMG, Status.ROLLED_BACK, A, B, "x", logs="out", quarantined=True, recovered="undone",
               attention=True, service="web", self_update="h", tag_pattern="semver:^1", running_tag="1.0",
               note="n", dependants_error="e", tag_digest=B)  # fmt: skip
    assert set(r.as_json()) - set(FIXED) == {
        "logs", "quarantined", "recovered", "attention", "service", "self_update", "tag_pattern", "running_tag",
        "note", "dependants_error", "tag_digest",
    }  # fmt: skip
