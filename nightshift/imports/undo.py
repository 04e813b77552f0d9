"""Undo an import: delete the rows it created that no later import changed, and say which rows stay.

A row stays when a later import changed it (undoing would lose that change), when another row points to
it (a business of its category, say), or when the import only updated it: earlier values are not kept,
so an update cannot be reversed. Everything happens in one write transaction; a dry run is the same
transaction rolled back, so its figures are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import write_transaction
from nightshift.db.schema import imports, metadata
from nightshift.imports.targets import MERGE_ORDER, target

UNDOABLE_STATUSES = ("succeeded", "partial")
# Rows of each kind listed by name in the outcome; the counts are always complete.
LISTED_ROWS = 20


class UndoRefused(ValueError):
    """The import cannot be undone; `code` says why (messages.py renders it)."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code, self.params = code, params


@dataclass
class KeptRows:
    """Rows of one table the undo leaves as they are, for one reason."""

    table: str
    reason: str  # changed_later | referenced | updated_only
    count: int
    keys: list[str] = field(default_factory=list)


@dataclass
class UndoOutcome:
    import_id: int
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=dict)
    kept: list[KeptRows] = field(default_factory=list)

    @property
    def deleted_total(self) -> int:
        return sum(self.deleted.values())

    def as_dict(self) -> dict:
        return {"import_id": self.import_id, "dry_run": self.dry_run, "deleted": self.deleted_total,
                "deleted_by_table": self.deleted, "kept": [vars(k) for k in self.kept]}


class _DryRun(Exception):
    """Rolls the dry run's transaction back."""


def undo_import(engine: Engine, import_id: int, *, dry_run: bool = False) -> UndoOutcome:
    outcome = UndoOutcome(import_id, dry_run)
    try:
        with write_transaction(engine) as conn:
            _check(conn, import_id)
            # Children first: a row this import created that points to another of its rows goes first.
            for table in _imported_tables()[::-1]:
                _undo_table(conn, table, import_id, outcome)
            if dry_run:
                raise _DryRun
            undone = imports.update().where(imports.c.id == import_id)
            conn.execute(undone.values(undone_at=sa.func.current_timestamp()))
    except _DryRun:
        pass
    return outcome


def _check(conn: Connection, import_id: int) -> None:
    row = conn.execute(sa.select(imports.c.status, imports.c.undone_at)
                       .where(imports.c.id == import_id)).first()
    if row is None:
        raise UndoRefused("undo_unknown_import", import_id=import_id)
    if row.undone_at is not None:
        raise UndoRefused("undo_already_undone", import_id=import_id)
    if row.status not in UNDOABLE_STATUSES:
        raise UndoRefused("undo_nothing_written", import_id=import_id, status=row.status)


def _imported_tables() -> list[sa.Table]:
    tables: list[sa.Table] = []
    for name in MERGE_ORDER:
        table = target(name).table
        if table not in tables and "created_by_import_id" in table.c:
            tables.append(table)
    return tables


def _key_column(table: sa.Table) -> sa.Column:
    """The column naming a row to a person: its unique key, without the parent's id (a sub-category's slug)."""
    conflict = next(target(name).conflict for name in MERGE_ORDER if target(name).table is table)
    return table.c[next(c for c in conflict if not c.endswith("_id"))]


def _undo_table(conn: Connection, table: sa.Table, import_id: int, outcome: UndoOutcome) -> None:
    created = table.c.created_by_import_id == import_id
    references = _references_to(table)
    referenced = sa.or_(*references) if references else sa.false()
    _keep(conn, table, outcome, "changed_later", created & (table.c.import_id.is_distinct_from(import_id)))
    _keep(conn, table, outcome, "referenced", created & (table.c.import_id == import_id) & referenced)
    _keep(conn, table, outcome, "updated_only",
          (table.c.import_id == import_id) & table.c.created_by_import_id.is_distinct_from(import_id))
    deleted = conn.execute(table.delete().where(created, table.c.import_id == import_id, ~referenced)).rowcount
    if deleted:
        outcome.deleted[table.name] = deleted


def _references_to(table: sa.Table) -> list[sa.ColumnElement[bool]]:
    """For each foreign key of another table to `table`: some row of it points to the row."""
    conditions = []
    for other in metadata.sorted_tables:
        for key in other.foreign_keys:
            if key.column.table is table and other is not table:
                conditions.append(sa.exists().where(key.parent == key.column))
    return conditions


def _keep(conn: Connection, table: sa.Table, outcome: UndoOutcome, reason: str,
          condition: sa.ColumnElement[bool]) -> None:
    count = conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar_one()
    if not count:
        return
    key = _key_column(table)
    keys = conn.execute(sa.select(key).where(condition).order_by(key).limit(LISTED_ROWS)).scalars()
    outcome.kept.append(KeptRows(table.name, reason, count, [str(k) for k in keys]))
