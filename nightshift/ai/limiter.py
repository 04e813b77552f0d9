"""The AI provider's rate limit, shared by every process through one database row per provider and model.

Requests are spaced 60 / requests_per_minute seconds apart (no burst: the old system's 5 a minute means
one every 12 s); tokens follow a token bucket of one minute's worth (GCRA), charged with each request's
estimate. A caller books its start in a short transaction, then sleeps outside it. When the provider
says its own budget is used up (x-ratelimit-remaining-* at 0), `pause_until` holds every process's next
start until the budget's reset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.engine import dialect_insert, utc, write_transaction
from nightshift.db.schema import ai_rate_limits

MINUTE = timedelta(minutes=1)


def book_start(engine: Engine, name: str, *, requests_per_minute: int, tokens_per_minute: int, tokens: int,
               now: datetime | None = None) -> float:
    """Book the next start for a request of `tokens` tokens; the seconds to wait before sending it."""
    now = now or datetime.now(UTC)
    cost = MINUTE * (min(tokens, tokens_per_minute) / tokens_per_minute)
    with write_transaction(engine) as conn:
        conn.execute(dialect_insert(conn, ai_rate_limits)
                     .values(name=name, next_request_at=now, next_token_at=now)
                     .on_conflict_do_nothing(index_elements=["name"]))
        row = conn.execute(sa.select(ai_rate_limits.c.next_request_at, ai_rate_limits.c.next_token_at)
                           .where(ai_rate_limits.c.name == name).with_for_update()).one()
        next_request_at, token_debt_until = utc(row.next_request_at), max(utc(row.next_token_at), now)
        start = max(now, next_request_at, token_debt_until + cost - MINUTE)
        conn.execute(sa.update(ai_rate_limits).where(ai_rate_limits.c.name == name).values(
            next_request_at=start + MINUTE / requests_per_minute,
            next_token_at=max(token_debt_until, start) + cost))
    return (start - now).total_seconds()


def pause_until(engine: Engine, name: str, until: datetime, now: datetime | None = None) -> None:
    """No request of this limiter starts before `until` (a later pause or booking is never shortened)."""
    with write_transaction(engine) as conn:
        conn.execute(dialect_insert(conn, ai_rate_limits)
                     .values(name=name, next_request_at=until, next_token_at=now or datetime.now(UTC))
                     .on_conflict_do_nothing(index_elements=["name"]))
        conn.execute(sa.update(ai_rate_limits)
                     .where(ai_rate_limits.c.name == name, ai_rate_limits.c.next_request_at < until)
                     .values(next_request_at=until))
