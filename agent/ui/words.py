"""The page's words, in Chinese and English, and the language a request gets."""

from __future__ import annotations

EN = {
    "title": "cr-agent status", "entries": "Watch entries", "timeline": "Last 30 days", "agent": "Agent",
    "version": "version", "uptime": "uptime", "scheduler": "scheduler", "last_pass": "last pass",
    "next_pass": "next pass", "build_alerts": "ACR build alerts", "none": "none", "engine": "engine",
    "local": "local", "image": "image", "running": "running", "latest": "latest", "last_check": "last check",
    "history": "history", "no_history": "No deployment recorded yet.", "from_to": "from → to",
    "took": "took", "why": "why", "logs": "last log lines", "never": "never", "ago": "ago", "in": "in",
    "no_events": "No update, rollback or failure in the last 30 days.", "generated": "as of",
    "refresh": "refreshes every 10 s", "not_running": "not running", "pass_running": "a pass is running",
    "quarantined_digests": "quarantined", "pinned_to": "pinned to", "problem": "problem", "ok": "ok",
    "failed_pass": "failed", "no_entries": "No watch entries yet.", "service": "service", "labels": "labels",
    "dead": "dead", "alive": "running",
}  # fmt: skip
ZH = {
    "title": "cr-agent 状态", "entries": "监控条目", "timeline": "最近 30 天", "agent": "代理",
    "version": "版本", "uptime": "运行时长", "scheduler": "调度器", "last_pass": "上次检查",
    "next_pass": "下次检查", "build_alerts": "ACR 构建告警", "none": "无", "engine": "引擎",
    "local": "本机", "image": "镜像", "running": "运行中", "latest": "最新", "last_check": "上次检查",
    "history": "历史", "no_history": "还没有部署记录。", "from_to": "从 → 到", "took": "耗时",
    "why": "原因", "logs": "最后的日志", "never": "从未", "ago": "前", "in": "后",
    "no_events": "最近 30 天没有更新、回滚或失败。", "generated": "数据时间", "refresh": "每 10 秒自动刷新",
    "not_running": "未运行", "pass_running": "正在检查", "quarantined_digests": "已隔离",
    "pinned_to": "固定于", "problem": "问题", "ok": "正常", "failed_pass": "失败",
    "no_entries": "还没有监控条目。", "service": "服务", "labels": "标签", "dead": "已停止", "alive": "运行中",
}  # fmt: skip
STATES = {
    "en": {
        "up_to_date": "up to date", "pending": "update pending", "updating": "updating", "updated": "updated",
        "rolled_back": "rolled back", "failed": "failed", "quarantined": "quarantined", "pinned": "pinned",
        "skipped": "skipped", "unknown": "not checked yet", "interrupted": "interrupted",
        "recovered": "recovered",
    },
    "zh": {
        "up_to_date": "已是最新", "pending": "有更新待处理", "updating": "更新中", "updated": "已更新",
        "rolled_back": "已回滚", "failed": "失败", "quarantined": "已隔离", "pinned": "已固定",
        "skipped": "已跳过", "unknown": "尚未检查", "interrupted": "被中断", "recovered": "已恢复",
    },
}  # fmt: skip


def words(lang: str) -> dict[str, str]:
    return ZH if lang == "zh" else EN


def from_accept_language(header: str | None) -> str:
    """zh or en: the first of the two the browser prefers; en when it names neither."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in ("zh", "en") and q > 0:
            ranked.append((-q, i, base))
    return min(ranked)[2] if ranked else "en"
