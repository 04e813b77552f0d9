"""The recovery queries of the import log and the imports' leases, on SQLite and PostgreSQL; an import
whose process is killed mid-run."""

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from nightshift.db.engine import create_engine
from nightshift.db.schema import cities, imports
from nightshift.imports import recovery
from tests.conftest import NIGHTSHIFT


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


def test_a_lease_is_held_while_its_block_runs_and_let_go_after(db):
    import_id = add(db, "held", "running")
    assert not recovery.lease_is_held(db, import_id)
    with recovery.lease(db, import_id):
        assert recovery.lease_is_held(db, import_id)
        assert not recovery.lease_is_held(db, import_id + 1), "one lease per import"
        assert recovery.interrupt_abandoned(db, "en") == []
    assert not recovery.lease_is_held(db, import_id)


class _WaitCutShort(Exception):
    pass


def test_a_wait_for_a_held_sqlite_lease_cut_short_by_a_signal_leaves_no_descriptor_open(tmp_path):
    """The lease of a SQLite import is an flock: a wait for it that a signal interrupts (a run being
    stopped) raises, keeps no descriptor of the lock file, and the lease is free once its holder lets go."""
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")

    def cut_short(_signum, _frame):
        raise _WaitCutShort

    previous = signal.signal(signal.SIGALRM, cut_short)
    try:
        with recovery.lease(engine, 7):
            descriptors = len(os.listdir("/proc/self/fd"))
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            started = time.monotonic()
            try:
                with recovery.lease(engine, 7):
                    raise AssertionError("a second holder took a lease that is held")
            except _WaitCutShort:
                pass
            assert time.monotonic() - started >= 0.2, "the second holder waited for the lease"
            assert len(os.listdir("/proc/self/fd")) == descriptors
            assert recovery.lease_is_held(engine, 7)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not recovery.lease_is_held(engine, 7)
    with recovery.lease(engine, 7):
        assert recovery.lease_is_held(engine, 7)
    engine.dispose()


def test_imports_in_progress_without_a_holder_are_interrupted_once(db):
    running = add(db, "dead", "running", run="run-dead")
    started = add(db, "dead-before-running", "received", run="run-early")
    registered = add(db, "waiting", "received", run=None)  # no run yet: the stalled check's, not this one's
    alive = add(db, "alive", "running", run="run-alive")
    done = add(db, "done", "succeeded")
    with recovery.lease(db, alive):
        turned = recovery.interrupt_abandoned(db, "en")
        assert recovery.interrupt_abandoned(db, "en") == [], "once"
    assert [r["id"] for r in turned] == [running, started]
    with db.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(imports))}
    assert {i: rows[i].status for i in (running, started, registered, alive, done)} == {
        running: "interrupted", started: "interrupted", registered: "received", alive: "running", done: "succeeded"}
    assert rows[running].failure_kind == "transient" and "run-dead" in rows[running].message
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert recovery.interrupted_runs(db, an_hour_ago) == {"run-dead": running, "run-early": started}
    assert recovery.interrupted_runs(db, datetime.now(UTC) + timedelta(seconds=1)) == {}
    assert [r["id"] for r in recovery.claim_transient_failures(db)] == [running, started], "retried once"


KILLED_ROWS = 60_000


def wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def test_an_import_whose_process_is_killed_is_interrupted_and_its_rerun_imports_everything_once(
        db, db_url, tmp_path, monkeypatch):
    """`nightshift import` SIGKILLed while the import runs: the log said `running` forever. Now `imports
    list` shows it interrupted, the failure sensor reports the CLI's Dagster run failed and re-requests
    the import once, and that run imports every row once from the file left where it was."""
    import dagster as dg

    from assets.imports import STATUS_TAG, import_batch
    from sensors.imports import import_failure_sensor
    from tests.conftest import app_resources

    config = tmp_path / "nightshift.yaml"
    config.write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHIFT_", "DAGSTER_"))}
    env.update(NIGHTSHIFT_DATABASE_URL=db_url, NIGHTSHIFT_DATA_DIR=str(tmp_path / "data"),
               NIGHTSHIFT_CONFIG=str(config), DAGSTER_HOME=str(tmp_path / "dagster_home"), NIGHTSHIFT_LANG="en")
    for key, value in env.items():
        if key.startswith(("NIGHTSHIFT_", "DAGSTER_")):
            monkeypatch.setenv(key, value)
    path = tmp_path / "villes.csv"
    path.write_text("nom;code_postal\n" + "".join(f"Ville {i};{10000 + i:05d}\n" for i in range(KILLED_ROWS)))

    importing = subprocess.Popen([NIGHTSHIFT, "import", str(path), "--profile", "cities", "--json"], env=env,
                                 cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def running():
            with db.connect() as conn:
                return conn.execute(sa.select(imports.c.id, imports.c.partition_key, imports.c.dagster_run_id)
                                    .where(imports.c.status == "running")).first()
        row = wait_for(running, 120, "the import never ran")
    finally:
        importing.send_signal(signal.SIGKILL)
        importing.wait(timeout=30)
    with db.connect() as conn:
        assert conn.execute(sa.select(imports.c.status).where(imports.c.id == row.id)).scalar_one() == "running"
        assert conn.execute(sa.select(sa.func.count()).select_from(cities)).scalar_one() == 0, "killed before the merge"

    listed = subprocess.run([NIGHTSHIFT, "imports", "list", "--json"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    [shown] = json.loads(listed.stdout)
    assert shown["status"] == "interrupted" and row.dagster_run_id in shown["message"]
    assert path.exists(), "the file stays where it was"

    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(row.dagster_run_id).status == dg.DagsterRunStatus.STARTED, "nothing watched it"
        with dg.build_sensor_context(instance=instance, resources=app_resources(db_url)) as context:
            [request] = import_failure_sensor(context).run_requests
        killed = instance.get_run_by_id(row.dagster_run_id)
        assert killed.status == dg.DagsterRunStatus.FAILURE and killed.tags[STATUS_TAG] == "interrupted"
        assert request.partition_key == row.partition_key
        rerun = dg.materialize([import_batch], instance=instance, partition_key=request.partition_key,
                               tags=request.tags, resources=app_resources(db_url))
        assert rerun.success and instance.get_run_by_id(rerun.run_id).tags[STATUS_TAG] == "succeeded"
    with db.connect() as conn:
        final = conn.execute(sa.select(imports).where(imports.c.id == row.id)).one()
        assert (final.status, final.inserted, final.rows_total) == ("succeeded", KILLED_ROWS, KILLED_ROWS)
        assert conn.execute(sa.select(sa.func.count()).select_from(cities)).scalar_one() == KILLED_ROWS
