"""The one backoff function: how long to wait before try n of anything that failed temporarily (an HTTP
call, a notification, an AI request)."""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime

PLUS_MINUS = 0.2


def exponential_delay(attempt: int, *, base: float, factor: float = 2.0, cap: float, jitter: str = "full",
                      floor: float = 0.0, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): base × factor^(attempt-1), at most the cap,
    jittered (full: anywhere in [0, delay]; plus_minus: ±20 %) so the backlog of an outage does not come
    back in lockstep; never earlier than `floor` (a provider's Retry-After, a code's minimum)."""
    rng = rng or random.Random()
    delay = min(base * factor ** (attempt - 1), cap)
    if jitter == "full":
        delay = rng.uniform(0, delay)
    else:
        delay *= rng.uniform(1 - PLUS_MINUS, 1 + PLUS_MINUS)
    return max(delay, floor)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header's wait: seconds ("30", "1.5") or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - (now or datetime.now(UTC))).total_seconds(), 0.0)
