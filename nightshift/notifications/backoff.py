"""The one backoff function: when a notification whose attempt n failed temporarily is due again."""

from __future__ import annotations

import random

from nightshift.backoff import exponential_delay
from nightshift.notification_settings import BackoffPolicy
from nightshift.notifications.classify import Rule


def retry_delay(policy: BackoffPolicy, attempt: int, *, rule: Rule | None = None, retry_after: float | None = None,
                rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based).

    base × factor^(attempt-1), at most the cap, jittered (full: anywhere in [0, delay]; plus_minus: ±20 %)
    so the backlog of an outage does not come back in lockstep; Meta's pair-rate code waits 4^(n-1) s
    instead, exactly. Never earlier than the provider's Retry-After nor than the code's floor.
    """
    floor = max(retry_after or 0.0, rule.floor_seconds if rule else 0.0)
    if rule is not None and rule.pair_rate:
        return max(4.0 ** (attempt - 1), floor)
    return exponential_delay(attempt, base=policy.base_seconds, factor=policy.factor, cap=policy.cap_seconds,
                             jitter=policy.jitter, floor=floor, rng=rng)
