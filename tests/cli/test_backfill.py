"""A backfill of all failed import partitions, the way an operator runs it: the failed partition keys
from `nightshift imports failed-partitions`, then `dagster job backfill` of `import_job`, whose
runs the instance launches in their own processes. Each failed file is re-imported from where it was
kept, idempotently; `dagster asset materialize --partition` re-runs one partition the same way. A file
that failed on its data and was not fixed is left out: a backfill would only fail on it again."""

import json
import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.schema import cities, imports
from tests.conftest import PROJECT_ROOT

BIN = PROJECT_ROOT / ".venv" / "bin"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr
    return result


def test_backfill_of_all_failed_partitions_reimports_them(tmp_path, db_url):
    migrate.upgrade(db_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Runs launch as soon as they are submitted (the project's queued coordinator needs the daemon).
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHIFT_")}
    env.update(NIGHTSHIFT_DATABASE_URL=db_url, NIGHTSHIFT_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(home))
    uploads = tmp_path / "data" / "uploads" / "cities"
    uploads.mkdir(parents=True)
    files = {"bon.csv": "nom;code_postal\nBourg;01000\nLyon;69001\n",
             "panne.csv": "nom;code_postal\nNantes;44000\n",
             "mauvais.csv": "nom;code_postal\nAgen;XYZ\nPau;12\n",
             "entete.csv": "nom;population\nTarbes;40000\n"}  # no code_postal column, and left so
    for name, content in files.items():
        (uploads / name).write_text(content, encoding="utf-8")
        run("nightshift", "import", str(uploads / name), "--json", env=env)

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        # panne.csv: imported, then its run is taken as failed by a database outage.
        conn.execute(imports.update().where(imports.c.file_name == "panne.csv")
                     .values(status="failed", failure_kind="transient"))
        # mauvais.csv was rejected (all rows invalid) and moved to failed/: the operator fixes it there.
        kept = Path(conn.execute(sa.select(imports.c.file_path).where(imports.c.file_name == "mauvais.csv"))
                    .scalar_one())
    assert "/failed/" in str(kept)
    kept.write_text("nom;code_postal\nAgen;47000\nPau;64000\n", encoding="utf-8")

    failed = json.loads(run("nightshift", "imports", "list", "--status", "failed", "--json", env=env).stdout)
    assert {row["file"].rsplit("/", 1)[1]: row["kind"] for row in failed} == {
        "panne.csv": "transient", "mauvais.csv": "data", "entete.csv": "data"}
    keys = sorted(row["partition_key"] for row in failed if row["file"].rsplit("/", 1)[1] != "entete.csv")
    listed = run("nightshift", "imports", "failed-partitions", env=env)
    assert listed.stdout.strip() == ",".join(keys)
    assert "1 partition" in listed.stderr and "--kind data" in listed.stderr
    data = json.loads(run("nightshift", "imports", "failed-partitions", "--kind", "data", "--json", env=env).stdout)
    assert {Path(f["file"]).name: f["backfill"] for f in data} == {"mauvais.csv": True, "entete.csv": False}
    assert all(f["message"] for f in data)
    listed = listed.stdout.strip()
    submitted = run("dagster", "job", "backfill", "-w", "workspace.yaml", "-j", "import_job",
                    "--partitions", listed, "--noprompt", env=env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr

    os.environ["DAGSTER_HOME"], previous_home = str(home), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            deadline = time.monotonic() + 180
            while True:
                runs = [r for r in instance.get_runs() if "dagster/backfill" in r.tags]
                if len(runs) == 2 and all(r.is_finished for r in runs):
                    break
                assert time.monotonic() < deadline, [(r.run_id, r.status) for r in runs]
                time.sleep(1)
            assert sorted(r.tags["dagster/partition"] for r in runs) == keys
            assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    finally:
        if previous_home is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous_home

    with engine.connect() as conn:
        log = {r.file_name: r for r in conn.execute(sa.select(imports))}
        names = set(conn.execute(sa.select(cities.c.name)).scalars())
    assert {name: row.status for name, row in log.items()} == {
        "bon.csv": "succeeded", "panne.csv": "succeeded", "mauvais.csv": "succeeded", "entete.csv": "failed"}
    assert (log["panne.csv"].inserted, log["panne.csv"].unchanged) == (0, 1), "idempotent"
    assert (log["mauvais.csv"].inserted, log["mauvais.csv"].invalid) == (2, 0)
    assert "/processed/" in log["mauvais.csv"].file_path and not kept.exists()
    assert names == {"Bourg", "Lyon", "Nantes", "Agen", "Pau"}
    assert run("nightshift", "imports", "failed-partitions", env=env).stdout.strip() == ""

    # One partition once more from the command line: the same file again, nothing changes.
    again = run("dagster", "asset", "materialize", "-m", "pipelines.definitions", "--select", "import_batch",
                "--partition", log["mauvais.csv"].partition_key, env=env)
    assert again.returncode == 0, again.stderr
    with engine.connect() as conn:
        row = conn.execute(sa.select(imports).where(imports.c.file_name == "mauvais.csv")).one()
        assert (row.status, row.inserted, row.unchanged) == ("succeeded", 0, 2)
        assert conn.execute(sa.select(sa.func.count()).select_from(cities)).scalar_one() == 5
    engine.dispose()
