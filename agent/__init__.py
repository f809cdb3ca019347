"""cr-agent: pull-based continuous deployment for Docker hosts fed by Alibaba Cloud ACR."""

__version__ = "0.1.0"
