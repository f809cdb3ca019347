"""The words of a notification, in Chinese or English, as Markdown or plain text. Pure functions."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from agent.choices import LANGUAGES as LANGUAGES
from agent.choices import language_from_env as language_from_env
from agent.model import Result, Status, short_digest
from agent.notify.reasons import in_chinese

LOG_LINES = 10  # of a rolled-back container's output
KINDS = ("updated", "rolled_back", "failed", "would_update", "recovered", "skipped", "up_to_date",
         "build_failed", "build_stuck", "unsigned")  # fmt: skip
_ICON = {"updated": "✅", "rolled_back": "↩️", "failed": "❌", "would_update": "🔔", "recovered": "💚",
         "skipped": "⏭", "up_to_date": "✔", "build_failed": "🛠❌", "build_stuck": "🛠⏳", "unsigned": "🔏"}  # fmt: skip

_PHRASES: Mapping[str, tuple[str, str]] = {  # key: (English, 中文)
    "updated": ("updated", "已更新"),
    "rolled_back": ("rolled back", "已回滚"),
    "failed": ("failed", "失败"),
    "would_update": ("update available", "有可用更新"),
    "recovered": ("recovered", "已恢复"),
    "skipped": ("skipped", "已跳过"),
    "up_to_date": ("up to date", "已是最新"),
    "build_failed": ("ACR build failed", "ACR 构建失败"),
    "build_stuck": ("ACR build stuck", "ACR 构建卡住"),
    "unsigned": ("image not signed, not deployed", "镜像未签名，未部署"),  # or not by a trusted key
    "took": ("took {s}", "耗时 {s}"),
    "reason": ("reason", "原因"),
    "detail": ("detail", "详情"),
    "image": ("repository", "仓库"),
    "source": ("source", "源码"),
    "logs": ("last log lines of the new container", "新容器的最后几行日志"),
    "undo": ("undo", "撤销"),
    "retry": ("retry", "重试"),
    "since": ("failing since {t} (reminder)", "自 {t} 起一直失败（提醒）"),
    "build": ("build {id}, {state} for {m} min", "构建 {id}，{state} 已 {m} 分钟"),
    "console": ("console", "控制台"),
    "pass": ("pass took {s}", "本轮耗时 {s}"),
    "test_title": ("test message", "测试消息"),
    "test_body": ("cr-agent on {host} can reach this channel.", "{host} 上的 cr-agent 可以发送到此渠道。"),
    "interrupted": ("an interrupted replacement was finished or undone", "中断的替换已完成或已撤销"),
    "works_again": ("works again", "已恢复正常"),
    "sep": (", ", "，"),
    "colon": (": ", "："),
}
_WORDS = {lang: {k: v[i] for k, v in _PHRASES.items()} for i, lang in enumerate(("en", "zh"))}


@dataclass(frozen=True)
class Item:
    """One thing to tell: a container's outcome, a recovery, or an ACR build."""

    kind: str
    name: str  # container, or ns/repository for a build
    image: str = ""
    from_digest: str | None = None
    to_digest: str | None = None
    seconds: float | None = None
    reason: str | None = None
    logs: str | None = None
    since: str | None = None  # a reminder of a failure that began then
    build_id: str | None = None
    build_state: str | None = None
    build_minutes: int | None = None
    link: str | None = None
    version: str | None = None  # the new image's `v1.4.2 (3f2a9c1)`, from its OCI labels
    source: str | None = None  # its org.opencontainers.image.source


def item_for(r: Result, events: Collection[str]) -> Item | None:
    """What to tell about one result, or None; a would_update already told is left out."""
    if r.recovered:
        return (
            Item("recovered", r.container, r.image, reason=str(r.recovered))
            if "recovered" in events
            else None
        )
    if r.status.value not in events or r.seen_before or r.status.value not in KINDS:
        return None
    logs = r.logs if r.status is Status.ROLLED_BACK else None
    v = r.version
    return Item(r.status.value, r.container, r.image, r.current_digest, r.to_digest, r.seconds, r.error,
                logs or None, version=str(v) if v else None, source=v.source if v else None)  # fmt: skip


def duration(seconds: float, lang: str) -> str:
    if seconds < 60:
        return f"{seconds:.1f} 秒" if lang == "zh" else f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    return f"{m} 分 {s} 秒" if lang == "zh" else f"{m}m{s:02d}s"


def title(host: str, items: Sequence[Item], lang: str, prefix: str = "") -> str:
    w = _WORDS[lang]
    counts: dict[str, int] = {}
    for it in items:
        counts[it.kind] = counts.get(it.kind, 0) + 1
    summary = w["sep"].join(f"{w[k]} {n}" if lang == "zh" else f"{n} {w[k]}" for k, n in counts.items())
    return f"{prefix}cr-agent @ {host}{w['colon']}{summary}"


def command(it: Item, agent: str = "agent") -> tuple[str, str] | None:
    """(label key, command) that undoes or retries what happened; `agent` is how the agent is run there."""
    if it.kind == "updated":
        return "undo", f"{agent} rollback {it.name}"
    if it.kind == "rolled_back":
        return "retry", f"{agent} retry {it.name}"
    if it.kind == "failed":
        return "retry", f"{agent} once"
    return None


def _tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def _repository(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def _lines(it: Item, lang: str, md: bool, agent: str = "agent") -> list[str]:
    """The detail lines of one item (without bullets or indentation)."""
    w = _WORDS[lang]

    def code(s: str) -> str:
        return f"`{s}`" if md else s

    out = []
    if it.kind.startswith("build_"):
        minutes = it.build_minutes if it.build_minutes is not None else 0
        out.append(w["build"].format(id=code(it.build_id or "?"), state=it.build_state or "?", m=minutes))
        if it.link:
            out.append(f"{w['console']}{w['colon']}{it.link}")
    elif it.from_digest or it.to_digest:
        line = f"{code(short_digest(it.from_digest))} → {code(short_digest(it.to_digest))}"
        if it.version:
            line += f" · {code(it.version)}"
        if it.seconds is not None:
            line += f" · {w['took'].format(s=duration(it.seconds, lang))}"
        out.append(line)
    if it.image and not it.kind.startswith("build_"):
        out.append(f"{w['image']}{w['colon']}{_repository(it.image)}")
    if it.source:
        out.append(f"{w['source']}{w['colon']}{it.source}")
    if it.kind == "recovered":
        out.append(w["interrupted"] if it.reason else w["works_again"])
    elif it.reason:
        reason, raw = in_chinese(it.reason) if lang == "zh" else (it.reason, None)
        out.append(f"{w['reason']}{w['colon']}{reason}")
        if raw:
            out.append(f"{w['detail']}{w['colon']}{raw}")
    if it.since:
        out.append(w["since"].format(t=it.since))
    cmd = command(it, agent)
    if cmd:
        out.append(f"{w[cmd[0]]}{w['colon']}{code(cmd[1])}")
    return out


def _log_tail(logs: str) -> list[str]:
    lines = [ln.rstrip()[:200] for ln in logs.strip().splitlines() if ln.strip()]
    return lines[-LOG_LINES:]


def body(
    items: Sequence[Item], lang: str, markdown: bool, pass_seconds: float | None = None, agent: str = "agent"
) -> str:
    """One block per item; Markdown for DingTalk/Feishu/Lark bots, plain text elsewhere."""
    w = _WORDS[lang]
    blocks = []
    for it in items:
        tag = _tag(it.image)
        head = (
            f"{_ICON[it.kind]} **{it.name}** {w[it.kind]}"
            if markdown
            else f"{_ICON[it.kind]} {it.name} {w[it.kind]}"
        )
        if tag:
            head += f" ({'`' + tag + '`' if markdown else tag})"
        lines = [head] + [f"- {ln}" if markdown else f"   {ln}" for ln in _lines(it, lang, markdown, agent)]
        if it.logs:
            tail = _log_tail(it.logs)
            lines.append(f"- {w['logs']}{w['colon']}" if markdown else f"   {w['logs']}{w['colon']}")
            lines += ["```", *tail, "```"] if markdown else [f"   | {ln}" for ln in tail]
        blocks.append("\n".join(lines))
    if pass_seconds is not None:
        blocks.append(w["pass"].format(s=duration(pass_seconds, lang)))
    return "\n\n".join(blocks)


def trial_message(host: str, lang: str, prefix: str = "") -> tuple[str, str]:
    w = _WORDS[lang]
    return f"{prefix}cr-agent @ {host}{w['colon']}{w['test_title']}", w["test_body"].format(host=host)
