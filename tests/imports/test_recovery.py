"""The recovery queries of the import log, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from nightshift.db.schema import imports
from nightshift.imports import recovery


def add(engine, name: str, status: str, *, partition: str | None = None, run: str | None = "run-1",
        **values) -> int:
    row = {"file_name": name, "sha256": name.ljust(64, "0")[:64], "size_bytes": 1, "status": status,
           "stage": "received", "partition_key": partition or f"{name}-key", "dagster_run_id": run, **values}
    with engine.begin() as conn:
        return conn.execute(imports.insert().values(**row)).inserted_primary_key[0]


def test_failed_partition_keys_are_the_partitions_whose_latest_import_failed_in_a_run(db):
    add(db, "bad", "failed", failure_kind="bad_input")
    add(db, "outage", "failed", failure_kind="transient")
    add(db, "ok", "succeeded")
    add(db, "unknown_account", "failed", run=None)  # rejected at registration: no partition in Dagster
    add(db, "reimported", "failed")
    add(db, "reimported", "succeeded", partition="reimported-key")  # `nightshift import` of the same file
    add(db, "again", "failed")
    add(db, "again", "duplicate", partition="again-key", run=None)  # a duplicate does not hide the failure
    many = [f"lot{i:03d}" for i in range(60)]  # more than one page of `imports list`
    for name in many:
        add(db, name, "failed")
    assert recovery.failed_partition_keys(db) == sorted(
        ["bad-key", "outage-key", "again-key", *(f"{n}-key" for n in many)])


def test_one_automatic_retry_per_import_whichever_path_claims_it(db):
    """A stalled registration re-requested once is not retried again when that run fails transiently."""
    import_id = add(db, "late", "received", run=None, created_at=datetime.now(UTC) - timedelta(hours=1))
    recent = add(db, "recent", "received", run=None, created_at=datetime.now(UTC))
    cutoff = datetime.now(UTC) - timedelta(minutes=15)
    assert [c["id"] for c in recovery.stalled_candidates(db, cutoff)] == [import_id]  # not `recent`
    [claimed] = recovery.claim_stalled(db, [import_id])
    assert (claimed["id"], claimed["auto_retries"]) == (import_id, 0)
    assert recovery.claim_stalled(db, [import_id]) == []
    with db.begin() as conn:
        conn.execute(imports.update().where(imports.c.id == import_id)
                     .values(status="failed", failure_kind="transient"))
    assert recovery.claim_transient_failures(db) == []
    with db.connect() as conn:
        retries = dict(conn.execute(sa.select(imports.c.id, imports.c.auto_retries)).all())
    assert retries == {import_id: 1, recent: 0}
