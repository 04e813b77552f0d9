"""The one backoff function: how long to wait before try n of anything that failed temporarily (an HTTP
call, a notification, an AI request)."""

from __future__ import annotations

import random

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
