"""The schema reflected from SQLite and from PostgreSQL is the same."""

from pathlib import Path

import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine

TYPE_FAMILIES = {
    "INTEGER": "integer",
    "BIGINT": "integer",
    "SMALLINT": "integer",
    "VARCHAR": "text",
    "TEXT": "text",
    "FLOAT": "float",
    "DOUBLE_PRECISION": "float",
    "DOUBLE PRECISION": "float",
    "REAL": "float",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "DATETIME": "datetime",
    "TIMESTAMP": "datetime",
    "JSON": "json",
}


def _family(column_type) -> str:
    name = type(column_type).__name__.upper()
    return TYPE_FAMILIES.get(name, name)


def _describe(url: str) -> dict:
    engine = create_engine(url)
    inspector = sa.inspect(engine)
    described = {}
    for table in sorted(inspector.get_table_names()):
        columns = {
            c["name"]: (_family(c["type"]), c["nullable"], getattr(c["type"], "length", None))
            for c in inspector.get_columns(table)
        }
        described[table] = {
            "columns": columns,
            "pk": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                # PostgreSQL also lists the index behind each UNIQUE constraint.
                for i in inspector.get_indexes(table)
                if not i.get("duplicates_constraint")
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
            ),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(table)
            ),
        }
    engine.dispose()
    return described


def test_sqlite_and_postgresql_schemas_are_identical(tmp_path: Path, pg_session_url: str):
    sqlite_url = f"sqlite:///{tmp_path / 'parity.db'}"
    migrate.upgrade(sqlite_url)
    migrate.downgrade(pg_session_url, "base")
    migrate.upgrade(pg_session_url)

    sqlite_schema, pg_schema = _describe(sqlite_url), _describe(pg_session_url)
    assert sorted(sqlite_schema) == sorted(pg_schema)
    assert "notifications" in sqlite_schema
    for table in sqlite_schema:
        assert sqlite_schema[table] == pg_schema[table], table


def test_the_sweep_and_idempotency_indexes_exist(db):
    inspector = sa.inspect(db)
    notification_indexes = {tuple(i["column_names"]) for i in inspector.get_indexes("notifications")}
    assert ("status", "next_attempt_at", "priority") in notification_indexes
    ledger_unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("token_ledger")}
    assert ("idempotency_key",) in ledger_unique
    period_unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("token_periods")}
    assert ("account_id", "period_start") in period_unique
