"""Python 3.10 shims for the three 3.11 features the agent uses; everything else imports them from here."""

from __future__ import annotations

import datetime
import enum
import sys

if sys.version_info >= (3, 11):
    from enum import StrEnum

    import tomllib
else:  # pragma: no cover - exercised by CI's Python 3.10 run
    import tomli as tomllib

    class StrEnum(str, enum.Enum):
        """enum.StrEnum before 3.11: members are str and format as their value."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str(self.value).__format__(spec)


UTC = datetime.timezone.utc  # datetime.UTC is 3.11+

__all__ = ["UTC", "StrEnum", "tomllib"]
