"""Staging and merging: rows go to per-import temporary staging tables, then one set-based upsert
per target table with exact inserted / updated / unchanged counts.

PostgreSQL: COPY into the staging table. SQLite: executemany into it (writes to TEMP tables need no
lock on the main database, so other writers are not blocked while a big file is parsed); rows that
worker processes prepared arrive in scratch SQLite files they wrote themselves, copied in by one
INSERT … SELECT each. The merge itself is one `INSERT … SELECT … ON CONFLICT … DO UPDATE SET <the
file's columns> … WHERE <one of them> IS DISTINCT FROM excluded.<it>`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from nightshift.db.engine import dialect_insert
from nightshift.imports import values
from nightshift.imports.targets import Reference, Target

_META_COLUMNS = ("_line", "_key")
# Written with every update of a row, not compared: the hash of what the import read, and which import.
_WRITTEN_ALONG = ("content_hash", "import_id")
# Set by the merge, not by the file: when the row was created (on insert only) and last changed.
_WRITE_TIMES = ("created_at", "updated_at")
# Set on insert only: the import that created the row (what `imports undo` may delete).
_CREATED_BY = "created_by_import_id"
# PostgreSQL work_mem of the merge (MB): the least, and the most an import may take for its sort.
SORT_MEMORY_MB = (256, 1024)


def sort_memory_mb(staged_bytes: int) -> int:
    """work_mem to sort staged rows in memory (an on-disk sort is much slower): their size and a quarter,
    within SORT_MEMORY_MB."""
    return min(max(int(staged_bytes * 1.25) >> 20, SORT_MEMORY_MB[0]), SORT_MEMORY_MB[1])


@dataclass(frozen=True)
class RowChange:
    """What the merge would do to one staged row: new, changed (column, old, new) or unchanged."""

    line: int
    status: str
    changes: tuple[tuple[str, object, object], ...] = ()


@dataclass
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _staging_columns(target: Target, frame_columns: list[str]) -> list[sa.Column]:
    columns = []
    for name in frame_columns:
        if name in target.table.c:
            columns.append(sa.Column(name, target.table.c[name].type))
        elif name == "_line":
            columns.append(sa.Column(name, sa.Integer))
        else:
            columns.append(sa.Column(name, sa.Text))
    return columns


def _column_values(column: pd.Series) -> np.ndarray:
    """Plain Python values of a column, None where missing, dates as ISO text: what both drivers take."""
    if pd.api.types.is_datetime64_any_dtype(column):
        column = column.dt.strftime("%Y-%m-%d")
    return column.to_numpy(dtype=object, na_value=None)


@dataclass
class StagingPayload:
    """Rows encoded for a staging table, for the columns that hold a value in at least one row (the
    others stay NULL): PostgreSQL, COPY's text format; SQLite, a two-dimensional object array of the
    values, one array row per staged row: its statements take their parameters as slices of it, with no
    tuple to build per row."""

    columns: list[str]
    data: str | np.ndarray
    rows: int


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(column: list) -> list[str]:
    """One column in COPY's text format: NULL as \\N; backslash, tab, LF and CR escaped (scanned for
    once per column, since they are rare)."""
    texts = [v if v.__class__ is str else None if v is None else str(v) for v in column]
    present = [t for t in texts if t is not None]
    if any(ch in "".join(present) for ch in "\\\t\n\r"):
        texts = [None if t is None else t.translate(_COPY_ESCAPES) for t in texts]
    return ["\\N" if t is None else t for t in texts]


def staging_payload(frame: pd.DataFrame, dialect: str) -> StagingPayload:
    """Needs no connection, so worker processes can encode while this one writes."""
    columns = [name for name in frame.columns if values.filled(frame[name])]
    if dialect != "postgresql":
        rows = np.empty((len(frame), len(columns)), dtype=object)
        for position, name in enumerate(columns):
            rows[:, position] = _column_values(frame[name])
        return StagingPayload(columns, rows, len(frame))
    # Text format, built by joins of whole columns rather than by csv.writer row by row.
    texts = (_copy_text(_column_values(frame[name]).tolist()) for name in columns)
    lines = map("\t".join, zip(*texts, strict=True))
    return StagingPayload(columns, "\n".join(lines) + "\n", len(frame))


@dataclass
class ScratchRows:
    """Rows a worker process wrote to a SQLite file of its own (table `rows`). The import's
    connection copies them into its staging table with one INSERT … SELECT: C speed, where tuples
    would be pickled across processes and bound one by one in the import's process."""

    path: str
    columns: list[str]
    rows: int


def _quoted(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


# Rows per INSERT statement on SQLite: one statement run per hundred rows binds the same values with a
# tenth less work than one per row (more rows per statement cost more to prepare than they save).
ROWS_PER_INSERT = 100


def insert_rows(cursor: sqlite3.Cursor, table: str, payload: StagingPayload) -> None:
    """A SQLite payload's rows into `table`, ROWS_PER_INSERT rows per statement run (fewer when this
    SQLite allows fewer parameters per statement)."""
    one_row = f"({', '.join('?' for _ in payload.columns)})"
    insert = f'INSERT INTO "{table}" ({_quoted(payload.columns)}) VALUES '
    parameters = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = max(1, min(ROWS_PER_INSERT, parameters // max(len(payload.columns), 1)))
    rows = payload.data
    whole = len(rows) - len(rows) % per_statement if per_statement > 1 else 0  # rows in full statements
    if whole:
        flat, step = rows[:whole].ravel(), len(payload.columns) * per_statement  # ravel: a view, no copy
        cursor.executemany(insert + ", ".join([one_row] * per_statement),
                           (flat[start:start + step].tolist() for start in range(0, len(flat), step)))
    if whole < len(rows):
        cursor.executemany(insert + one_row, rows[whole:].tolist())


def write_scratch(payload: StagingPayload, path: Path) -> ScratchRows:
    """Write a SQLite payload to a new scratch file (no journal, no sync: the file is thrown away once
    copied, and rebuilt from the upload if anything fails; the largest pages: fewer to fill and copy)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as scratch:
        scratch.execute("PRAGMA page_size=65536")
        scratch.execute("PRAGMA journal_mode=OFF")
        scratch.execute("PRAGMA synchronous=OFF")
        scratch.execute("BEGIN")
        scratch.execute(f"CREATE TABLE rows ({_quoted(payload.columns)})")
        insert_rows(scratch.cursor(), "rows", payload)
        scratch.execute("COMMIT")
    return ScratchRows(str(path), payload.columns, payload.rows)


class StagingTable:
    """One temporary table holding the rows of one target for one import."""

    def __init__(self, conn: Connection, target: Target, columns: list[str], suffix: str) -> None:
        self.conn = conn
        self.target = target
        self.columns = columns
        self.table = sa.Table(f"stg_{target.name}_{suffix}", sa.MetaData(),
                              *_staging_columns(target, columns), prefixes=["TEMPORARY"])
        with conn.begin():
            self.table.create(conn)
        self.rows = 0

    @property
    def data_columns(self) -> list[str]:
        """Columns written to the target table (not the lookup or bookkeeping ones)."""
        return [c for c in self.columns if c not in _META_COLUMNS and c not in self.target.lookup_columns]

    def append(self, frame: pd.DataFrame) -> None:
        if not frame.empty:
            self.write(staging_payload(frame[self.columns], self.conn.dialect.name))

    def write(self, payload: StagingPayload | ScratchRows) -> None:
        """Write rows encoded by `staging_payload` (possibly in another process), each write its own
        transaction (a scratch file is attached and detached between transactions)."""
        if not payload.rows:
            return
        cursor = self.conn.connection.driver_connection.cursor()
        if isinstance(payload, ScratchRows):
            self._copy_scratch(cursor, payload)
        else:
            with self.conn.begin():
                self._insert(cursor, payload)
        cursor.close()
        self.rows += payload.rows

    def _insert(self, cursor, payload: StagingPayload) -> None:
        if self.conn.dialect.name == "postgresql":
            with cursor.copy(f'COPY "{self.table.name}" ({_quoted(payload.columns)}) FROM STDIN') as copy:
                copy.write(payload.data)
        else:
            insert_rows(cursor, self.table.name, payload)

    def _copy_scratch(self, cursor, scratch: ScratchRows) -> None:
        cursor.execute("ATTACH DATABASE ? AS scratch", (scratch.path,))
        try:
            columns = _quoted(scratch.columns)
            with self.conn.begin():
                cursor.execute(f'INSERT INTO temp."{self.table.name}" ({columns}) '
                               f"SELECT {columns} FROM scratch.rows")
        finally:
            cursor.execute("DETACH DATABASE scratch")
        os.unlink(scratch.path)

    @contextmanager
    def _lines(self, lines: np.ndarray) -> Iterator[sa.Select]:
        """SELECT of the given line numbers from a temporary table: one statement however many lines
        (an IN list has a parameter limit on SQLite and rescans the staging table per batch)."""
        table = sa.Table(f"{self.table.name}_lines", sa.MetaData(), sa.Column("line", sa.Integer, primary_key=True),
                         prefixes=["TEMPORARY"])
        table.create(self.conn)
        self.conn.execute(table.insert(), [{"line": int(line)} for line in np.unique(lines)])
        yield sa.select(table.c.line)
        table.drop(self.conn)  # after an error, the rollback of the import's transaction takes it away

    def keys_at(self, lines: np.ndarray) -> dict[int, str]:
        """The staged key (`Target.key`) of each of these lines."""
        with self._lines(lines) as selected:
            query = (sa.select(self.table.c._line, self.table.c[self.target.key])
                     .where(self.table.c._line.in_(selected)))
            return {int(line): key for line, key in self.conn.execute(query)}

    def delete_lines(self, lines: np.ndarray) -> None:
        if len(lines) == 0:
            return
        with self._lines(lines) as selected:
            self.rows -= self.conn.execute(self.table.delete().where(self.table.c._line.in_(selected))).rowcount

    def drop(self) -> None:
        self.conn.execute(sa.text(f'DROP TABLE IF EXISTS "{self.table.name}"'))

    def _resolved_select(self, import_id: int | None, *, ordered: bool = False, lines: bool = False) -> sa.Select:
        """The staged rows with their references resolved to ids, as the target table's columns (and their
        file line, with `lines`)."""
        staged = self.table.alias("s")
        select_columns = [staged.c[c] for c in self.data_columns] + ([staged.c._line] if lines else [])
        source: sa.FromClause = staged
        resolved: dict[str, sa.ColumnElement] = {}
        for reference in self.target.references:
            ref = reference.table.alias(f"ref_{reference.column}")
            conditions = []
            for ref_column, staged_column in reference.match.items():
                value = resolved[staged_column[1:]] if staged_column.startswith("@") else staged.c[staged_column]
                conditions.append(ref.c[ref_column] == value)
            source = source.join(ref, sa.and_(*conditions), isouter=not self._required(reference))
            resolved[reference.column] = ref.c.id
            select_columns.append(ref.c.id.label(reference.column))
        if "import_id" in self.target.table.c and import_id is not None:
            select_columns.append(sa.literal(import_id, sa.BigInteger).label("import_id"))
            select_columns.append(sa.literal(import_id, sa.BigInteger).label(_CREATED_BY))
        # The write time, read once per statement: left to the columns' default, SQLite computes it for
        # every row.
        written_at = sa.select(sa.func.current_timestamp()).scalar_subquery()
        select_columns.extend(written_at.label(c) for c in _WRITE_TIMES if c in self.target.table.c)
        select = sa.select(*select_columns).select_from(source)
        # Rows in key order: index B-trees are filled in sequence instead of at random pages.
        return select.order_by(staged.c[self.target.key]) if ordered else select

    def unresolved_lines(self, reference: Reference, known_slugs: sa.Select | None = None) -> list[tuple[int, str]]:
        """(line, staged value) of rows whose reference is absent from the database and `known_slugs`."""
        staged_column = next(c for c in reference.match.values() if not c.startswith("@"))
        ref_column = next(k for k, v in reference.match.items() if v == staged_column)
        known = sa.select(reference.table.c[ref_column])
        if known_slugs is not None:
            known = sa.union(known, known_slugs)
        query = sa.select(self.table.c._line, self.table.c[staged_column]).where(
            self.table.c[staged_column].is_not(None), self.table.c[staged_column].not_in(known)
        )
        return [(row[0], row[1]) for row in self.conn.execute(query)]

    def absent_keys(self) -> list:
        """Single-column conflict keys of staged rows the target does not hold yet."""
        [column] = self.target.conflict
        table = self.target.table
        query = sa.select(self.table.c[column]).where(
            ~sa.exists().where(table.c[column] == self.table.c[column]))
        return [row[0] for row in self.conn.execute(query)]

    def changes(self, fields: set[str], limit: int) -> list[RowChange]:
        """The first `limit` staged rows in file order, each with what the merge would do to it: the same
        comparison as the upsert's (the columns the file states), read before it runs."""
        resolved = self._resolved_select(None, lines=True).subquery("r")
        table = self.target.table
        stated = self.target.stated_columns(self._compared([c.name for c in resolved.c if c.name != "_line"]),
                                            fields)
        existing = sa.and_(*(table.c[c] == resolved.c[c] for c in self.target.conflict))
        query = (sa.select(resolved.c._line, table.c.id, *(resolved.c[c] for c in stated),
                           *(table.c[c].label(f"old_{c}") for c in stated))
                 .select_from(resolved.outerjoin(table, existing)).order_by(resolved.c._line).limit(limit))
        result = []
        for row in self.conn.execute(query):
            line, stored, new, old = row[0], row[1], row[2:2 + len(stated)], row[2 + len(stated):]
            if stored is None:
                result.append(RowChange(int(line), "new"))
                continue
            changed = tuple((c, o, n) for c, o, n in zip(stated, old, new, strict=True) if o != n)
            result.append(RowChange(int(line), "changed" if changed else "unchanged", changed))
        return result

    def merge(self, import_id: int | None, fields: set[str], *, insert_only: bool = False) -> MergeCounts:
        """Upsert the staged rows into the target; exact counts computed in the same transaction. An
        existing row is updated where a column the file has (`fields`: its profile fields) differs."""
        upsert = self._upsert(self._resolved_select(import_id, ordered=True), insert_only, fields)
        upsert = upsert.execution_options(preserve_rowcount=True)  # SQLAlchemy keeps it for UPDATE/DELETE only
        if insert_only:  # ON CONFLICT DO NOTHING: what the statement changed, it inserted
            return MergeCounts(inserted=self.conn.execute(upsert).rowcount)
        if self.conn.dialect.name == "postgresql":
            return self._merge_counted_by_returning(upsert, import_id)
        return self._merge_counted_by_changes(upsert, import_id)

    def _required(self, reference: Reference) -> bool:
        """A row without this reference cannot be written (NOT NULL): the upsert joins it, not outer-joins it."""
        return not self.target.table.c[reference.column].nullable

    def _resolved_count(self, import_id: int | None) -> int:
        """Staged rows the upsert reads (a row whose required reference is missing is not among them).
        Without a required reference, every staged row: the outer joins match on the referenced table's
        unique keys (one row or none), so no pass over the staged rows is needed to count them."""
        if not any(self._required(reference) for reference in self.target.references):
            return self.rows
        resolved = self._resolved_select(import_id).subquery()
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(resolved)).scalar_one())

    def _merge_counted_by_changes(self, upsert: sa.Insert, import_id: int | None) -> MergeCounts:
        """SQLite: the upsert's changes are the rows it inserted or updated, and the table grows by the
        inserted ones (this write transaction is the only writer; an upsert deletes nothing). Saves
        joining the staged rows with the table. The key-ordered read is sorted by helper threads."""
        self.conn.exec_driver_sql(f"PRAGMA threads = {os.cpu_count() or 1}")
        count_rows = sa.select(sa.func.count()).select_from(self.target.table)
        before = self.conn.execute(count_rows).scalar_one()
        changed = self.conn.execute(upsert).rowcount
        inserted = self.conn.execute(count_rows).scalar_one() - before
        return MergeCounts(inserted, changed - inserted, self._resolved_count(import_id) - changed)

    def _merge_counted_by_returning(self, upsert: sa.Insert, import_id: int | None) -> MergeCounts:
        """PostgreSQL: one pass. The upsert returns the rows it inserted (xmax = 0) or updated; the
        rows its WHERE skipped are the unchanged ones. Saves the join of the staged rows with the table."""
        # Room to sort the staged rows by key in memory, for this transaction only.
        staged_bytes = self.conn.execute(sa.select(sa.func.pg_total_relation_size(self.table.name))).scalar_one()
        self.conn.execute(sa.text(f"SET LOCAL work_mem = '{sort_memory_mb(staged_bytes)}MB'"))
        written = upsert.returning(sa.literal_column("xmax = 0", sa.Boolean).label("inserted")).cte("written")
        inserted, updated = self.conn.execute(
            sa.select(sa.func.count().filter(written.c.inserted), sa.func.count().filter(~written.c.inserted))
        ).one()
        return MergeCounts(int(inserted), int(updated), self._resolved_count(import_id) - int(inserted) - int(updated))

    def _compared(self, columns: list[str]) -> list[str]:
        """Of the columns written, those an update compares (not the key, the provenance or the write times)."""
        return [c for c in columns
                if c not in self.target.conflict and c not in (*_WRITTEN_ALONG, *_WRITE_TIMES, _CREATED_BY)]

    def _upsert(self, source: sa.Select, insert_only: bool, fields: set[str]) -> sa.Insert:
        columns = [c.name for c in source.selected_columns]
        # `WHERE true`: SQLite needs it to parse INSERT … SELECT … ON CONFLICT unambiguously.
        statement = dialect_insert(self.conn, self.target.table).from_select(columns, source.where(sa.true()))
        stated = self.target.stated_columns(self._compared(columns), fields)
        if insert_only or not stated:  # nothing the file says could change an existing row
            return statement.on_conflict_do_nothing(index_elements=list(self.target.conflict))
        excluded = statement.excluded
        # Columns the file does not have keep their values; the row's hash and provenance go along.
        updates = {c: excluded[c] for c in [*stated, *_WRITTEN_ALONG, "updated_at"] if c in columns}
        return statement.on_conflict_do_update(
            index_elements=list(self.target.conflict),
            set_=updates,
            where=sa.or_(*(self.target.table.c[c].is_distinct_from(excluded[c]) for c in stated)),
        )
