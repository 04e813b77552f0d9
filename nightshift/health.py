"""Database health: reachable, migrated to head, row counts. Used by the database_health job."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.schema import metadata


@dataclass(frozen=True)
class DatabaseHealth:
    backend: str
    revision: str | None
    head: str
    latency_ms: float
    row_counts: dict[str, int]

    @property
    def at_head(self) -> bool:
        return self.revision == self.head


def check_database(engine: Engine) -> DatabaseHealth:
    # Alembic loads here, not when the definitions load: every run worker loads those, few run this.
    from alembic.runtime.migration import MigrationContext

    from nightshift.db.migrate import head_revision

    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        latency_ms = (time.perf_counter() - started) * 1000
        revision = MigrationContext.configure(conn).get_current_revision()
        head = head_revision()
        counts: dict[str, int] = {}
        if revision == head:
            for table in metadata.sorted_tables:
                counts[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    return DatabaseHealth(
        backend=engine.dialect.name,
        revision=revision,
        head=head,
        latency_ms=round(latency_ms, 2),
        row_counts=counts,
    )
