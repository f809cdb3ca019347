"""The configuration: schema (dataclasses), fields (one value each), watches, builds, load; choices in agent.choices."""

from __future__ import annotations

from agent.choices import Edition as Edition
from agent.choices import Match as Match
from agent.choices import Source as Source
from agent.choices import Strategy as Strategy
from agent.config.access import weak_tokens as weak_tokens
from agent.config.load import DEFAULT_PATHS as DEFAULT_PATHS
from agent.config.load import describe as describe
from agent.config.load import find_config as find_config
from agent.config.load import load as load
from agent.config.load import parse as parse
from agent.config.schema import EVENTS as EVENTS
from agent.config.schema import MODES as MODES
from agent.config.schema import AgentSettings as AgentSettings
from agent.config.schema import AliyunSettings as AliyunSettings
from agent.config.schema import Config as Config
from agent.config.schema import HealthSpec as HealthSpec
from agent.config.schema import MetricsSettings as MetricsSettings
from agent.config.schema import NotifySettings as NotifySettings
from agent.config.schema import RegistryAuth as RegistryAuth
from agent.config.schema import Schedule as Schedule
from agent.config.schema import Watch as Watch
from agent.config.schema import WebhookSettings as WebhookSettings
from agent.config.watches import watch_from_table as watch_from_table
