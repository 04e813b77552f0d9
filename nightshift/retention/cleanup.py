"""Running the retention policies over the app tables: batched deletes, dependency guards, dry runs.

Each batch is one short write transaction of at most `batch_size` rows, so a sweep's claim or an import's
merge waits for one batch at most:
- PostgreSQL: `DELETE … WHERE id = ANY(ARRAY(SELECT id … ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED))`
  (`_claimed`): rows a sweep holds are skipped (the next run takes them), nothing waits on them;
- SQLite (one writer, BEGIN IMMEDIATE): the rowid range of the next n matching rows, deleted by range.
Batches walk the primary key upwards from where the previous one ended, so no batch reads the rows the
earlier ones deleted. A run stopped between batches (or interrupted inside one, which rolls back) is
resumed by running it again: every batch re-checks its conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import read_transaction, utc, write_transaction
from nightshift.db.schema import (
    ai_requests,
    import_errors,
    imports,
    notification_attempts,
    notifications,
    token_ledger,
    webhook_events,
)
from nightshift.retention import files
from nightshift.retention.policies import Policy, Retention
from nightshift.retention.run import PolicyReport, Run


def run_policies(engine: Engine, retention: Retention, policies: Iterable[Policy], run: Run) -> list[PolicyReport]:
    reports = []
    for policy in policies:
        if policy.table is None:
            reports.append(files.run_file_policy(engine, policy, retention.batch_size, run))
        else:
            reports.append(_run_table_policy(engine, retention, policy, run))
        if reports[-1].stopped:
            break
    return reports


def _cutoff(policy: Policy, now: datetime) -> datetime:
    return now - policy.max_age


def _ready(retention: Retention, policy: Policy, now: datetime) -> sa.ColumnElement[bool]:
    """The rows the policy may touch now: covered, past their age, and no longer needed elsewhere."""
    table = policy.table
    condition = table.c[policy.age_column] < _cutoff(policy, now)
    if policy.covers is not None:
        condition = sa.and_(policy.covers, condition)
    guard = _GUARDS.get(policy.name)
    return condition if guard is None else sa.and_(condition, guard(retention, policy, now))


def _no_open_reservation() -> sa.ColumnElement[bool]:
    # The ledger keeps its rows (their request_id becomes NULL); a hold not yet ended still needs its request.
    reserve, end = token_ledger.alias("reserve"), token_ledger.alias("reservation_end")
    ended = sa.select(end.c.id).where(end.c.reservation_id == reserve.c.id).exists()
    return ~sa.select(reserve.c.id).where(reserve.c.request_id == ai_requests.c.id,
                                          reserve.c.entry_kind == "reserve", ~ended).exists()


def _ai_request_done(retention: Retention, policy: Policy, now: datetime) -> sa.ColumnElement[bool]:
    # A failed or timed-out request with a next attempt scheduled is still the AI domain's work.
    return sa.and_(ai_requests.c.next_attempt_at.is_(None), _no_open_reservation())


def _ai_request_abandoned(retention: Retention, policy: Policy, now: datetime) -> sa.ColumnElement[bool]:
    # Nobody will take it up again: no live lease, no attempt scheduled, no hold to end (the AI domain
    # ends the holds of the abandoned requests that have one when it times them out).
    lease_over = sa.or_(ai_requests.c.lease_until.is_(None), ai_requests.c.lease_until < now)
    return sa.and_(lease_over, _ai_request_done(retention, policy, now))


def _notification_unneeded(retention: Retention, policy: Policy, now: datetime) -> sa.ColumnElement[bool]:
    # Its attempts go with it (children), so none may be younger than either policy keeps them.
    attempts_age = max(policy.max_age, retention.policy("notification_attempts").max_age)
    younger_attempt = sa.select(notification_attempts.c.id).where(
        notification_attempts.c.notification_id == notifications.c.id,
        notification_attempts.c.started_at >= now - attempts_age).exists()
    webhook_to_apply = sa.select(webhook_events.c.id).where(
        webhook_events.c.notification_id == notifications.c.id, webhook_events.c.applied_at.is_(None)).exists()
    return sa.and_(~younger_attempt, ~webhook_to_apply)


_GUARDS: dict[str, Callable[[Retention, Policy, datetime], sa.ColumnElement[bool]]] = {
    "ai_requests_abandoned": _ai_request_abandoned,
    "ai_requests": _ai_request_done,
    "notifications": _notification_unneeded,
}
# Rows deleted, in batches, before their parent (rather than by ON DELETE CASCADE inside the parent's
# batch, which could hold any number of them).
_CHILDREN: dict[str, tuple[tuple[sa.Table, str], ...]] = {
    "notifications": ((notification_attempts, "notification_id"),),
    "imports": ((import_errors, "import_id"),),
}


def _timeout_values(now: datetime) -> dict[str, Any]:
    return {"status": "timeout", "error_code": "abandoned", "lease_until": None, "claim_token": None,
            "updated_at": now, "completed_at": now}


def _run_table_policy(engine: Engine, retention: Retention, policy: Policy, run: Run) -> PolicyReport:
    report = PolicyReport(policy.name)
    if not run.dry_run:
        if policy.name in _CHILDREN:
            _delete_parents(engine, retention, policy, run, report)
        else:
            values = _timeout_values(run.now) if policy.action == "timeout" else None
            _batched(engine, policy.table, _ready(retention, policy, run.now), retention.batch_size, run, report,
                     values=values)
    report.would_delete = _count_ready(engine, retention, policy, run)
    _describe_remaining(engine, policy, run.now, report)
    return report


def _batched(engine: Engine, table: sa.Table, condition: sa.ColumnElement[bool], batch_size: int, run: Run,
             report: PolicyReport | None, *, values: dict[str, Any] | None = None) -> None:
    """Delete (or update with `values`) the rows matching `condition`, at most batch_size per transaction.
    `report` None: the rows are a parent's children (logged, not counted as the policy's)."""
    pk = table.c.id
    after, batch, total = 0, 0, 0
    label = report.name if report is not None else table.name
    while True:
        if report is not None and run.should_stop():
            report.stopped = True
            return
        window = sa.select(pk).where(pk > after, condition).order_by(pk).limit(batch_size)
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                claimed = _claimed(pk, window)
                statement = table.delete() if values is None else table.update().values(values)
                # The server counts the batch and finds where it ended; no id travels to the client.
                done = statement.where(claimed).returning(pk).cte("batch")
                rows, last = conn.execute(sa.select(sa.func.count(), sa.func.max(done.c.id))).one()
            else:
                last = conn.execute(sa.select(sa.func.max(window.subquery().c.id))).scalar()
                rows = 0
                if last is not None:
                    in_range = sa.and_(pk > after, pk <= last, condition)
                    statement = table.delete() if values is None else table.update().values(values)
                    rows = conn.execute(statement.where(in_range)).rowcount
        if last is None:
            return
        after, batch, total = last, batch + 1, total + rows
        if report is not None:
            report.deleted, report.batches = total, batch
        run.progress(label, batch, rows, total)


def _claimed(pk: sa.Column, window: sa.Select) -> sa.ColumnElement[bool]:
    """`id = ANY(ARRAY(SELECT id … FOR UPDATE SKIP LOCKED))`: the `id IN (SELECT …)` of a batch, written so
    PostgreSQL runs the window once and fetches its rows by primary key (for a large IN it hash-joins a
    scan of the whole table instead)."""
    return pk == sa.any_(sa.func.array(window.with_for_update(skip_locked=True).scalar_subquery()))


def _parent_condition(retention: Retention, policy: Policy, run: Run, ids: list[int]) -> sa.ColumnElement[bool]:
    table = policy.table
    condition = sa.and_(table.c.id.in_(ids), _ready(retention, policy, run.now))
    if policy.name == "imports":
        # An import another import is a duplicate of stays while that one does (the foreign key).
        duplicate = imports.alias("duplicate")
        condition = sa.and_(condition, ~sa.select(duplicate.c.id).where(
            duplicate.c.duplicate_of_id == imports.c.id, duplicate.c.id.not_in(ids)).exists())
    return condition


def _candidates(conn: Connection, retention: Retention, policy: Policy, run: Run, after: int,
                limit: int | None) -> list[sa.Row]:
    table = policy.table
    columns = [table.c.id] + ([table.c.file_path, table.c.error_report_path] if policy.name == "imports" else [])
    query = (sa.select(*columns).where(table.c.id > after, _ready(retention, policy, run.now))
             .order_by(table.c.id).limit(limit))
    return conn.execute(query).all()


def _deletable_ids(policy: Policy, rows: list[sa.Row], run: Run) -> list[int]:
    if policy.name != "imports":
        return [row.id for row in rows]
    # An import whose file (or error report) is still kept in the data folder stays with it.
    return [row.id for row in rows
            if not files.kept_in(run.data_dir, (row.file_path, row.error_report_path))]


def _delete_parents(engine: Engine, retention: Retention, policy: Policy, run: Run, report: PolicyReport) -> None:
    table, after = policy.table, 0
    while not (stopped := run.should_stop()):
        with read_transaction(engine) as conn:
            rows = _candidates(conn, retention, policy, run, after, retention.batch_size)
        if not rows:
            return
        after = rows[-1].id
        ids = _deletable_ids(policy, rows, run)
        if not ids:
            continue
        condition = _parent_condition(retention, policy, run, ids)
        for child, foreign_key in _CHILDREN[policy.name]:
            parents = sa.select(table.c.id).where(condition)
            _batched(engine, child, child.c[foreign_key].in_(parents.scalar_subquery()), retention.batch_size,
                     run, None)
        childless = [~sa.select(child.c.id).where(child.c[fk] == table.c.id).exists()
                     for child, fk in _CHILDREN[policy.name]]
        condition = sa.and_(condition, *childless)
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                claimed = _claimed(table.c.id, sa.select(table.c.id).where(condition))
                rows_deleted = len(conn.execute(table.delete().where(claimed).returning(table.c.id)).all())
            else:
                rows_deleted = conn.execute(table.delete().where(condition)).rowcount
        report.deleted += rows_deleted
        report.batches += 1
        run.progress(policy.name, report.batches, rows_deleted, report.deleted)
    report.stopped = stopped


def _count_ready(engine: Engine, retention: Retention, policy: Policy, run: Run) -> int:
    table = policy.table
    with read_transaction(engine) as conn:
        if policy.name != "imports":
            return conn.execute(sa.select(sa.func.count()).select_from(table)
                                .where(_ready(retention, policy, run.now))).scalar_one()
        ids = set(_deletable_ids(policy, _candidates(conn, retention, policy, run, 0, None), run))
        if not ids:
            return 0
        referenced = conn.execute(sa.select(imports.c.duplicate_of_id, imports.c.id)
                                  .where(imports.c.duplicate_of_id.is_not(None))).all()
    return len(ids - {original for original, duplicate in referenced if duplicate not in ids})


def _describe_remaining(engine: Engine, policy: Policy, now: datetime, report: PolicyReport) -> None:
    table = policy.table
    covered = policy.covers if policy.covers is not None else sa.true()
    with read_transaction(engine) as conn:
        count, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(table.c[policy.age_column]))
                                     .where(covered)).one()
    report.remaining = count
    report.oldest_remaining_age_s = None if oldest is None else round((now - utc(oldest)).total_seconds(), 3)
