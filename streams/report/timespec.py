"""Parse the time bounds SREs type: ``now``, ``-6h``/``6h`` (ago), ISO-8601, or epoch ms."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_AGO = re.compile(r"^-?(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time_ms(text: str, now_ms: int) -> int:
    """Milliseconds since the epoch (UTC). Raises ValueError with the accepted forms."""
    t = text.strip()
    if t == "now":
        return now_ms
    m = _AGO.match(t)
    if m:
        return now_ms - int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    if t.isdigit():
        return int(t)  # epoch milliseconds
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"bad time {text!r}: use now, 6h (ago), 2023-05-01T00:00:00Z or epoch ms"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
