"""Cleanup benchmark on PostgreSQL: our batched retention of expired notification attempts next to one
unbatched DELETE of the same rows (the old commands' way), in the same run, with a sweep-style claimer of
notifications running throughout in its own process (as a sweep's run does).

BENCH_CLEANUP_ROWS (default 5,000,000) expired attempt rows are loaded with COPY before each variant.
Measured: rows/s, the longest single write transaction, and the claimer's latency (p50/p99/max of its
claim transaction: `SELECT … FOR UPDATE SKIP LOCKED` of 10 due rows + UPDATE) idle, during our cleanup
and during the unbatched DELETE. Targets: ≥ 100,000 rows/s; longest transaction < 1 s; claim p99 during
our cleanup ≤ 2 × idle p99. The figures replace the cleanup section of BENCHMARKS.md.
"""

import multiprocessing
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench._shared import create_pg_database, drop_pg_database, write_section
from nightshift.config import RetentionSettings
from nightshift.db import migrate
from nightshift.db.engine import create_engine, write_transaction
from nightshift.db.schema import notification_attempts, notifications
from nightshift.retention.cleanup import run_policies
from nightshift.retention.policies import resolve
from nightshift.retention.run import Run

ROWS = int(os.environ.get("BENCH_CLEANUP_ROWS", 5_000_000))
DUE_NOTIFICATIONS = 10_000
CLAIM_SIZE = 10
CLAIM_PAUSE_S = 0.02  # a sweep claims, sends, then claims again; it does not spin
IDLE_SECONDS = 10
SECTION = "## Cleanup (bench/cleanup.py)"


def load(engine, now: datetime) -> None:
    """ROWS expired attempts (45 days old) of one delivered notification, after emptying the table."""
    started = (now - timedelta(days=45)).isoformat()
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE notification_attempts"))
        parent = conn.execute(sa.select(notifications.c.id).where(notifications.c.idempotency_key == "parent")).scalar()
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            with cursor.copy("COPY notification_attempts (notification_id, attempt_no, outcome, started_at) "
                             "FROM STDIN") as copy:
                block = 100_000
                for first in range(0, ROWS, block):
                    copy.write("".join(f"{parent}\t{n}\tsent\t{started}\n"
                                       for n in range(first, min(first + block, ROWS))))
        raw.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE notification_attempts"))


def seed(engine) -> None:
    with engine.begin() as conn:
        conn.execute(notifications.insert(), [
            {"source_app": "bench", "idempotency_key": "parent", "recipient": "+22370000000",
             "message_type": "notification", "body": "x", "status": "delivered"}])
        conn.execute(notifications.insert(), [
            {"source_app": "bench", "idempotency_key": f"due-{n}", "recipient": "+22370000000",
             "message_type": "notification", "body": "x", "status": "pending"} for n in range(DUE_NOTIFICATIONS)])


def claim_loop(url: str, stop, results) -> None:
    """A sweep's claim as the notification sweep does it, in its own process like a sweep's run; its rows
    are put back as due for the next claim. Sends (start, seconds) of every claim when told to stop."""
    engine = create_engine(url)
    latencies = []
    while not stop.is_set():
        token = str(uuid.uuid4())
        started, clock = time.time(), time.perf_counter()
        with write_transaction(engine) as conn:
            due = (sa.select(notifications.c.id).where(notifications.c.status == "pending")
                   .order_by(notifications.c.id).limit(CLAIM_SIZE).with_for_update(skip_locked=True))
            ids = list(conn.execute(due).scalars())
            conn.execute(notifications.update().where(notifications.c.id.in_(ids))
                         .values(status="sending", claim_token=token))
        latencies.append((started, time.perf_counter() - clock))
        with write_transaction(engine) as conn:
            conn.execute(notifications.update().where(notifications.c.claim_token == token)
                         .values(status="pending", claim_token=None))
        time.sleep(CLAIM_PAUSE_S)
    engine.dispose()
    results.put(latencies)


class Claimer:
    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop_event, self.results = context.Event(), context.Queue()
        self.process = context.Process(target=claim_loop, args=(url, self.stop_event, self.results), daemon=True)
        self.process.start()
        self.latencies: list[tuple[float, float]] = []

    def stop(self) -> None:
        self.stop_event.set()
        self.latencies = self.results.get(timeout=120)
        self.process.join(30)

    def between(self, start: float, end: float) -> dict[str, float]:
        values = sorted(seconds for at, seconds in self.latencies if start <= at <= end)
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        return {"claims": len(values), "p50_ms": statistics.median(values) * 1000, "p99_ms": p99 * 1000,
                "max_ms": values[-1] * 1000}


def batched(engine, now: datetime) -> dict[str, float]:
    retention = resolve(RetentionSettings())
    batch_ends: list[float] = []
    run = Run(now, Path("/nonexistent"), on_batch=lambda progress: batch_ends.append(time.time()))
    started = time.time()
    [report] = run_policies(engine, retention, retention.selected(["notification_attempts"]), run)
    ended = time.time()
    durations = [b - a for a, b in zip([started, *batch_ends], batch_ends, strict=False)]
    deleting = batch_ends[-1] - started
    return {"rows": report.deleted, "seconds": deleting, "rows_per_s": report.deleted / deleting,
            "longest_s": max(durations), "batches": len(durations), "report_s": ended - batch_ends[-1],
            "start": started, "end": batch_ends[-1]}


def unbatched(engine, now: datetime) -> dict[str, float]:
    started = time.time()
    with write_transaction(engine) as conn:
        rows = conn.execute(notification_attempts.delete()
                            .where(notification_attempts.c.started_at < now - timedelta(days=30))).rowcount
    seconds = time.time() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "longest_s": seconds,
            "start": started, "end": started + seconds}


def main() -> None:
    url = create_pg_database()
    try:
        migrate.upgrade(url)
        engine = create_engine(url)
        seed(engine)
        now = datetime.now(UTC)
        claimer = Claimer(url)
        time.sleep(2)  # the claimer's process starts
        idle_start = time.time()
        time.sleep(IDLE_SECONDS)
        idle_end = time.time()
        load(engine, now)
        ours = batched(engine, now)
        load(engine, now)
        theirs = unbatched(engine, now)
        claimer.stop()
        engine.dispose()
        idle = claimer.between(idle_start, idle_end)
        ours["claims"] = claimer.between(ours["start"], ours["end"])
        theirs["claims"] = claimer.between(theirs["start"], theirs["end"])
    finally:
        drop_pg_database(url)
    write_results(idle, ours, theirs)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def write_results(idle: dict, ours: dict, theirs: dict) -> None:
    ratio = ours["claims"]["p99_ms"] / idle["p99_ms"]
    lines = [
        "",
        f"`python -m bench cleanup` on {datetime.now(UTC):%Y-%m-%d} — {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, PostgreSQL. {ROWS:,} expired notification attempts, loaded with COPY "
        "before each variant; a sweep-style claimer (10 due notifications per `FOR UPDATE SKIP LOCKED` claim, "
        f"{CLAIM_PAUSE_S * 1000:.0f} ms between claims) runs throughout in its own process.", "",
        "| measure | our batched cleanup | one unbatched DELETE (same run) | target |",
        "|---|---|---|---|",
        f"| rows/s | {ours['rows_per_s']:,.0f} ({ours['rows']:,} rows in {ours['seconds']:.1f} s, "
        f"{ours['batches']} batches) | {theirs['rows_per_s']:,.0f} ({theirs['rows']:,} rows in "
        f"{theirs['seconds']:.1f} s) | ≥ 100,000: {_met(ours['rows_per_s'] >= 100_000)} |",
        f"| longest single transaction, s | {ours['longest_s']:.3f} | {theirs['longest_s']:.1f} | "
        f"< 1 s: {_met(ours['longest_s'] < 1)} |",
        f"| claim latency p50 / p99 / max, ms | {ours['claims']['p50_ms']:.1f} / {ours['claims']['p99_ms']:.1f} / "
        f"{ours['claims']['max_ms']:.1f} ({ours['claims']['claims']} claims) | {theirs['claims']['p50_ms']:.1f} / "
        f"{theirs['claims']['p99_ms']:.1f} / {theirs['claims']['max_ms']:.1f} ({theirs['claims']['claims']} claims) | "
        f"p99 ≤ 2 × idle: {_met(ratio <= 2)} (× {ratio:.2f}) |",
        f"| claim latency idle p50 / p99 / max, ms | {idle['p50_ms']:.1f} / {idle['p99_ms']:.1f} / "
        f"{idle['max_ms']:.1f} ({idle['claims']} claims) | | |", "",
        f"After its last batch our cleanup counts what remains for its report ({ours['report_s']:.1f} s of reads).",
    ]
    print("\n".join([SECTION, *lines]))
    write_section(SECTION, lines)

if __name__ == "__main__":
    sys.exit(main())
