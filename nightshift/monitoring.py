"""Alerts from the tables, for the short-interval alerts sensor: breakers that opened or closed
(provider_breaker_changes) and imports that failed (the import log), each read past a cursor of ids so
nothing is missed however many changed between two ticks. Reads the shared schema only, no domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.alerts import raise_alert, resolve_alert
from nightshift.db.engine import read_transaction
from nightshift.db.schema import IMPORT_ENDED_WITHOUT_ROWS, imports, provider_breaker_changes

BATCH = 1000


@dataclass(frozen=True)
class Cursor:
    breaker_change_id: int = 0
    import_id: int = 0  # imports up to this id are finished and were looked at


def latest(engine: Engine) -> Cursor:
    """Where a first tick starts: after everything already in the tables (old changes are history)."""
    with read_transaction(engine) as conn:
        change = conn.execute(sa.select(sa.func.max(provider_breaker_changes.c.id))).scalar() or 0
        last_import = conn.execute(sa.select(sa.func.max(imports.c.id))).scalar() or 0
        unfinished = conn.execute(sa.select(sa.func.min(imports.c.id)).where(imports.c.finished_at.is_(None))).scalar()
    return Cursor(change, min(last_import, unfinished - 1) if unfinished is not None else last_import)


def evaluate(engine: Engine, cursor: Cursor, *, cooldown: timedelta, now: datetime | None = None,
             ) -> tuple[Cursor, dict[str, list[str]]]:
    """Raise or resolve the alerts of what changed after `cursor`; returns the new cursor and the keys."""
    raised: list[str] = []
    recovered: list[str] = []
    with read_transaction(engine) as conn:
        changes = conn.execute(sa.select(provider_breaker_changes).where(
            provider_breaker_changes.c.id > cursor.breaker_change_id).order_by(provider_breaker_changes.c.id)
            .limit(BATCH)).all()
        # Imports finish out of order: failures are looked for among those not yet finished at the last tick.
        finished = conn.execute(sa.select(imports.c.id, imports.c.status, imports.c.file_name, imports.c.message,
                                          imports.c.failure_kind)
                                .where(imports.c.id > cursor.import_id, imports.c.finished_at.is_not(None))
                                .order_by(imports.c.id).limit(BATCH)).all()
        unfinished = conn.execute(sa.select(sa.func.min(imports.c.id)).where(
            imports.c.id > cursor.import_id, imports.c.finished_at.is_(None))).scalar()
    for change in changes:
        key = f"breaker:{change.provider}:{change.provider_account}"
        if change.to_state == "open":
            if raise_alert(engine, key, "critical",
                           f"{change.provider} account {change.provider_account}: circuit breaker opened "
                           f"({change.reason or 'failures'}); its notifications wait",
                           {"provider": change.provider, "provider_account": change.provider_account},
                           cooldown=cooldown, now=now):
                raised.append(key)
        elif change.to_state == "closed" and resolve_alert(
                engine, key, f"{change.provider} account {change.provider_account}: circuit breaker closed again",
                now=now):
            recovered.append(key)
    failed = [row for row in finished if row.status in IMPORT_ENDED_WITHOUT_ROWS]
    if failed:
        names = ", ".join(f"#{row.id} {row.file_name}" for row in failed[:10])
        if raise_alert(engine, "import_failed", "warning", f"{len(failed)} import(s) failed: {names}",
                       {"import_ids": [row.id for row in failed][:100]}, cooldown=cooldown, now=now):
            raised.append("import_failed")
    # Past every finished import, but never past one still running.
    last_finished = max([cursor.import_id, *(row.id for row in finished)])
    import_id = min(last_finished, unfinished - 1) if unfinished is not None else last_finished
    next_cursor = Cursor(changes[-1].id if changes else cursor.breaker_change_id, import_id)
    return next_cursor, {"raised": raised, "recovered": recovered}
