"""release_expired_reservations: end every token hold past its expiry (a crashed request's hold)."""

import dagster as dg

from assets.quotas import DATABASE_RETRY
from nightshift.config import Settings
from nightshift.quotas import TokenLedger
from resources.database import Database
from resources.families import family_tags


@dg.op(retry_policy=DATABASE_RETRY)
def expire_holds(context: dg.OpExecutionContext, database: Database, settings: dg.ResourceParam[Settings]) -> None:
    expired, tokens = TokenLedger(database.engine, settings.quotas, settings.tz).expire_holds()
    if expired:
        context.log.info(f"{expired} expired hold(s) ended, {tokens:,} tokens back to their periods")
    context.add_output_metadata({"holds_expired": expired, "tokens_returned": tokens})


@dg.job(tags=family_tags("maintenance"),
        description="End every token reservation whose hold expired (its request crashed or never settled).")
def release_expired_reservations() -> None:
    expire_holds()
