"""The webhook tests' fixtures (tests/unit/webhook/support.py)."""

from tests.unit.webhook.support import logs, make

__all__ = ["make", "logs"]
