"""The configuration: schema (dataclasses and choices), fields (one value each), watches, builds, load."""

from __future__ import annotations

from agent.choices import Edition, Match, Source, Strategy
from agent.config.load import DEFAULT_PATHS, describe, find_config, load, parse
from agent.config.schema import (
    EVENTS,
    MODES,
    AgentSettings,
    AliyunSettings,
    Config,
    HealthSpec,
    MetricsSettings,
    NotifySettings,
    RegistryAuth,
    Schedule,
    Watch,
    WebhookSettings,
)
from agent.config.watches import watch_from_table

__all__ = [
    "DEFAULT_PATHS", "EVENTS", "MODES", "AgentSettings", "AliyunSettings", "Config", "Edition", "HealthSpec",
    "Match", "MetricsSettings", "NotifySettings", "RegistryAuth", "Schedule", "Source", "Strategy", "Watch",
    "WebhookSettings", "describe", "find_config", "load", "parse", "watch_from_table",
]  # fmt: skip
