"""Staging tables take every value back exactly as encoded by `staging_payload`, on both databases:
COPY's text format on PostgreSQL (escapes, NULL marker), executemany on SQLite, and on SQLite also
through the scratch file a worker process writes."""

import sqlite3
from contextlib import closing
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.imports.merge import ROWS_PER_INSERT, StagingTable, insert_rows, staging_payload, write_scratch
from nightshift.imports.targets import target

TRICKY = ["tab\there", "line\nbreak", "lone\rCR", "crlf\r\nend", "back\\slash", "\\N", "\\\\N", "’œ€ 北京",
          "ends with backslash\\", "", "  spaced  "]


def tricky_frame(n: int = len(TRICKY)) -> pd.DataFrame:
    """n rows of the tricky values, over and over."""
    texts = [TRICKY[i % len(TRICKY)] for i in range(n)]
    return pd.DataFrame({
        "name": pd.Series(texts, dtype=object),
        "description": pd.Series([None if i % 3 == 0 else text for i, text in enumerate(texts)], dtype=object),
        "latitude": [0.1 * i if i % 2 else None for i in range(n)],
        "is_active": pd.array([True, False, None] * (n // 3) + [True] * (n % 3), dtype="boolean"),
        "founded_on": [date(2020, 1, 1) + timedelta(days=i) if i % 4 else None for i in range(n)],
        "website": [None] * n,  # NULL in every row: left out of the write
        "_line": list(range(2, n + 2)),
        "_key": [f"key {i}" for i in range(n)],
    })


def staged_back(engine, frame: pd.DataFrame, scratch_path=None) -> list:
    """The frame written to a staging table (through a scratch file when a path is given), read back."""
    with engine.connect() as conn:
        staging = StagingTable(conn, target("businesses"), list(frame.columns), "roundtrip")
        payload = staging_payload(frame, conn.dialect.name)
        assert "website" not in payload.columns
        staging.write(write_scratch(payload, scratch_path) if scratch_path else payload)
        assert staging.rows == len(frame)
        with conn.begin():
            stored = conn.execute(sa.select(staging.table).order_by(staging.table.c._line)).all()
            staging.drop()
    return stored


def assert_same_values(stored: list, frame: pd.DataFrame) -> None:
    assert [row.description for row in stored] == [None if pd.isna(d) else d for d in frame["description"]]
    for row, expected in zip(stored, frame.itertuples(index=False), strict=True):
        assert row.name == expected.name
        assert row.latitude == (None if pd.isna(expected.latitude) else expected.latitude)
        assert row.is_active == (None if pd.isna(expected.is_active) else bool(expected.is_active))
        assert row.founded_on == expected.founded_on
        assert row.website is None
    assert [row._key for row in stored] == list(frame["_key"])


# Fewer rows than one SQLite statement takes, and whole statements with some rows left over.
ROW_COUNTS = [len(TRICKY), 2 * ROWS_PER_INSERT + 7]


@pytest.mark.parametrize("rows", ROW_COUNTS)
def test_tricky_values_round_trip_through_the_staging_table(db, rows):
    frame = tricky_frame(rows)
    assert_same_values(staged_back(db, frame), frame)


@pytest.mark.parametrize("rows", ROW_COUNTS)
def test_tricky_values_round_trip_through_a_scratch_file_on_sqlite(tmp_path, rows):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    frame = tricky_frame(rows)
    assert_same_values(staged_back(engine, frame, tmp_path / "chunk.db"), frame)
    assert not (tmp_path / "chunk.db").exists()  # a scratch file goes once copied
    engine.dispose()


@pytest.mark.parametrize("parameter_limit", [7, 40, 250_000])
def test_sqlite_rows_arrive_whatever_parameters_a_statement_may_take(parameter_limit):
    """The rows a statement per row would store, in order, as many rows per statement as the limit on
    parameters allows (7: one row of these 7 columns)."""
    frame = tricky_frame(2 * ROWS_PER_INSERT + 7)
    payload = staging_payload(frame, "sqlite")
    assert len(payload.columns) == 7
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, parameter_limit)
        for table in ("staged", "one_by_one"):
            conn.execute(f"CREATE TABLE {table} ({', '.join(payload.columns)})")
        insert_rows(conn.cursor(), "staged", payload)
        conn.executemany(f"INSERT INTO one_by_one VALUES ({', '.join('?' * 7)})", payload.data)
        stored, expected = (conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                            for table in ("staged", "one_by_one"))
    assert stored == expected and len(stored) == len(frame)
