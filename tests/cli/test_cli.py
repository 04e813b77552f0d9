"""The operator CLI, run as users run it: the installed `nightshift` console script in a subprocess."""

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.schema import categories
from nightshift.imports.service import PROGRESS_EVERY_ROWS
from tests.conftest import NIGHTSHIFT, PROJECT_ROOT, nightshift


def test_version(tmp_path):
    result = nightshift("--version", env=dict(os.environ), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("nightshift, version ")


def test_db_upgrade_and_current(cli_env, db_url, tmp_path):
    before = nightshift("db", "current", "--json", env=cli_env, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["current"] is None

    upgraded = nightshift("db", "upgrade", env=cli_env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert migrate.current_revision(db_url) == migrate.head_revision()

    after = json.loads(nightshift("db", "current", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert after["current"] == after["head"] == migrate.head_revision()
    assert after["at_head"] is True


def test_init_creates_data_folders_and_the_instance(cli_env, tmp_path):
    result = nightshift("init", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for folder in ("uploads", "processed", "failed", "reports"):
        assert (tmp_path / "data" / folder).is_dir()
    assert (tmp_path / "dagster_home" / "dagster.yaml").read_text() == (
        PROJECT_ROOT / "dagster.yaml"
    ).read_text()
    # The run queue limits the pools from the first backfill on (tests/dagster/test_asset_backfill.py).
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        limits = {pool.name: pool.limit for pool in instance.event_log_storage.get_pool_limits()}
    assert limits == {"imports": 4, "ai": 4}
    assert "concurrency pools imports, ai: at most 4 runs each at once" in result.stdout


def test_health_runs_the_job_on_the_instance_and_prints_json(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    result = nightshift("health", "--json", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "success"
    assert summary["steps"]["check_database_op"]["revision"] == migrate.head_revision()

    os.environ["DAGSTER_HOME"], saved = cli_env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            run = instance.get_run_by_id(summary["run_id"])
            assert run is not None and run.job_name == "database_health"
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags["nightshift/launched_by"] == "cli"
    finally:
        if saved is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = saved


def test_health_on_an_unmigrated_database_exits_1_with_the_fix(cli_env, tmp_path):
    result = nightshift("health", env=cli_env, cwd=tmp_path)
    assert result.returncode == 1
    assert "nightshift db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("NIGHTSHIFT_TIMEZONE", "Nowhere/Land", "NIGHTSHIFT_TIMEZONE"),
        ("NIGHTSHIFT_DATABASE_URL", "mysql://x@y/z", "NIGHTSHIFT_DATABASE_URL"),
    ],
)
def test_bad_configuration_exits_2_without_traceback(tmp_path, variable, value, named):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHIFT_")}
    env[variable] = value
    result = nightshift("db", "current", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_is_bad_usage(tmp_path):
    result = nightshift("frobnicate", env=dict(os.environ), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHIFT_")}
    env["NIGHTSHIFT_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = nightshift("db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def write_cities(path: Path, rows: list[str]) -> Path:
    path.write_text("nom;code_postal\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_import_json_then_list_and_show(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    path = write_cities(tmp_path / "villes.csv", ["Bourg;1000", "Lyon;69001", "Nulle part;XYZ"])
    result = nightshift("import", str(path), "--profile", "cities", "--json", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("status", "profile", "rows_total", "inserted", "updated", "unchanged",
                                     "invalid", "delimiter")} == {
        "status": "partial", "profile": "cities", "rows_total": 3, "inserted": 2, "updated": 0, "unchanged": 0,
        "invalid": 1, "delimiter": ";"}
    assert summary["errors"][0]["line"] == 4 and summary["errors"][0]["code"] == "invalid_postal_code"
    assert Path(summary["error_report"]).exists()
    assert path.exists(), "a file imported from outside the data folder stays where it is"

    # One vocabulary: the import's summary, as `imports show` gives it, and as `imports list` without the errors.
    [listed] = json.loads(nightshift("imports", "list", "--json", env=cli_env, cwd=tmp_path).stdout)
    shown = json.loads(nightshift("imports", "show", str(summary["import_id"]), "--json", env=cli_env,
                                  cwd=tmp_path).stdout)
    assert shown == summary
    assert listed == {key: value for key, value in summary.items() if key != "errors"}
    assert (summary["file"], summary["kind"], summary["dry_run"]) == (str(path), None, False)
    text = nightshift("imports", "show", str(summary["import_id"]), env={**cli_env, "NIGHTSHIFT_LANG": "en"},
                      cwd=tmp_path)
    assert text.returncode == 0 and "3 rows: 2 inserted, 0 updated, 0 unchanged, 1 invalid" in text.stdout


def test_import_dry_run_writes_nothing(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    path = write_cities(tmp_path / "villes.csv", ["Bourg;1000", "Lyon;69001"])
    result = nightshift("import", str(path), "--dry-run", "--json", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["profile"], summary["inserted"], summary["dry_run"]) == (
        "succeeded", "cities", 2, True)
    assert (summary["import_id"], summary["file"]) == (None, str(path))
    assert json.loads(nightshift("imports", "list", "--json", env=cli_env, cwd=tmp_path).stdout) == []
    text = nightshift("import", str(path), "--dry-run", env={**cli_env, "NIGHTSHIFT_LANG": "en"}, cwd=tmp_path)
    assert text.stdout.startswith("Dry run, nothing written — villes.csv: succeeded — profile cities")
    assert "None" not in text.stdout and "import -" not in text.stdout


def test_import_exit_codes(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    strict = write_cities(tmp_path / "villes.csv", ["Bourg;1000", "Nulle;XYZ"])
    failed = nightshift("import", str(strict), "--strict", env=cli_env, cwd=tmp_path)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr

    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 50)
    unreadable = nightshift("import", str(garbage), "--json", env={**cli_env, "NIGHTSHIFT_LANG": "en"}, cwd=tmp_path)
    assert unreadable.returncode == 2 and "Traceback" not in unreadable.stderr
    assert "Stack Trace" not in unreadable.stderr
    assert json.loads(unreadable.stdout)["status"] == "failed"
    assert "this is not a text table (binary content)" in json.loads(unreadable.stdout)["message"]
    assert "garbage.csv: this is not a text table (binary content)" in unreadable.stderr

    missing = nightshift("import", str(tmp_path / "absent.csv"), env=cli_env, cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_import_into_an_unmigrated_database_says_what_to_do(cli_env, tmp_path):
    path = write_cities(tmp_path / "villes.csv", ["Bourg;1000"])
    result = nightshift("import", str(path), env=cli_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "nightshift db upgrade" in result.stderr and "Traceback" not in result.stderr


def test_import_on_a_terminal_shows_a_progress_line(cli_env, db_url, tmp_path):
    """stderr is a real pseudo-terminal: the rows imported so far are redrawn in place, every
    PROGRESS_EVERY_ROWS rows and at the end."""
    import pty

    migrate.upgrade(db_url)
    rows = PROGRESS_EVERY_ROWS + 10_000
    path = write_cities(tmp_path / "villes.csv", [f"Ville {n};{10000 + n % 80000:05d}" for n in range(rows)])
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run([NIGHTSHIFT, "import", str(path), "--profile", "cities"],
                                env={**cli_env, "NIGHTSHIFT_LANG": "en"}, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=180)
        os.close(terminal)
        shown = b""
        while True:
            try:
                block = os.read(controller, 65536)
            except OSError:  # the terminal side is closed and drained
                break
            if not block:
                break
            shown += block
    finally:
        os.close(controller)
    assert result.returncode == 0, shown.decode(errors="replace")
    updates = [u for u in shown.decode().split("\r") if "read and validated" in u]
    assert [u.split(":")[1].strip().split(" rows")[0] for u in updates] == [str(PROGRESS_EVERY_ROWS), str(rows)]
    assert all(u.rstrip().endswith("rows/s)") for u in updates) and f"{rows} inserted" in result.stdout
    assert shown.decode().endswith("\r\x1b[K"), "the progress line gives way to the summary"
    # One rate: the summary's is the one the import log (and its JSON) records.
    [import_id] = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("Import ")]
    recorded = json.loads(nightshift("imports", "show", import_id, "--json", env=cli_env, cwd=tmp_path).stdout)
    assert f"({recorded['rows_per_second']} rows/s)" in result.stdout


def test_import_with_worker_processes_from_the_console_script(cli_env, db_url, tmp_path):
    """The workers start from the real `nightshift` process (forkserver) and the import is recorded
    like any other."""
    migrate.upgrade(db_url)
    config = tmp_path / "nightshift.yaml"
    config.write_text("imports:\n  workers: 2\n  parallel_min_bytes: 0\n", encoding="utf-8")
    path = write_cities(tmp_path / "villes.csv", [f"Ville {n};{10000 + n:05d}" for n in range(2_000)] + ["X;ABCDE"])
    result = nightshift("import", str(path), "--profile", "cities",
                        env={**cli_env, "NIGHTSHIFT_CONFIG": str(config), "NIGHTSHIFT_LANG": "en"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2000 inserted" in result.stdout and "1 invalid" in result.stdout
    assert "validated by 2 processes" in result.stdout


@pytest.mark.parametrize(
    ("name", "content", "args", "expected"),
    [
        # The file was read: the import ran and failed (1), on the real run and on the dry run alike.
        ("clients.csv", b"prenom;nom\nAwa;Traore\n", ["--profile", "clients"], 1),
        ("inconnu.csv", b"foo;bar\n1;2\n", [], 1),
        ("villes.csv", b"nom;code_postal\nBourg;01000\nA;x\nB;y\nC;z\n", [], 1),
        # The file cannot be read (2), whether it fails on opening or further down the file.
        ("binaire.csv", bytes(range(256)) * 50, [], 2),
        ("guillemet.csv", b'nom;code_postal\nBourg;01000\nLyon;"69001\nNantes;44000\n', [], 2),
    ],
    ids=["missing_column", "unknown_profile", "over_abort_threshold", "binary", "unclosed_quote"],
)
def test_import_exit_code_is_the_same_on_the_real_run_and_the_dry_run(cli_env, db_url, tmp_path, name, content,
                                                                        args, expected):
    migrate.upgrade(db_url)
    path = tmp_path / name
    path.write_bytes(content)
    dry = nightshift("import", str(path), *args, "--dry-run", "--json", env=cli_env, cwd=tmp_path)
    real = nightshift("import", str(path), *args, "--json", env=cli_env, cwd=tmp_path)
    assert (dry.returncode, real.returncode) == (expected, expected), real.stderr
    for result in (dry, real):
        summary = json.loads(result.stdout)
        assert summary["status"] == "failed" and summary["message"]
        assert "Traceback" not in result.stderr and "Stack Trace" not in result.stderr


def test_import_of_a_bad_file_prints_a_clear_message_and_no_stack_trace(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 50)
    for dry_run in ([], ["--dry-run"]):
        result = nightshift("import", str(garbage), *dry_run, env={**cli_env, "NIGHTSHIFT_LANG": "en"}, cwd=tmp_path)
        assert result.returncode == 2
        assert "Stack Trace" not in result.stderr and "Traceback" not in result.stderr
        # The reason once, first, then the summary; Dagster's event lines only with --verbose.
        assert result.stdout.startswith("garbage.csv: this is not a text table (binary content)")
        assert (result.stdout + result.stderr).count("this is not a text table") == 1
        assert "STEP_FAILURE" not in result.stderr and "dagster - " not in result.stderr, result.stderr
    verbose = nightshift("import", str(garbage), "--verbose", env=cli_env, cwd=tmp_path)
    assert verbose.returncode == 2 and "dagster - ERROR" in verbose.stderr and "RUN_FAILURE" in verbose.stderr


def write_businesses(path: Path) -> Path:
    path.write_text("nom;code_postal;categorie\nBoulangerie Awa;75001;Boulangerie du coin\n"
                    "Garage Diallo;69001;\nPharmacie Keita;13001;\n", encoding="utf-8")
    return path


def test_import_creates_unknown_categories_by_default(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    path = write_businesses(tmp_path / "entreprises.csv")
    result = nightshift("import", str(path), "--profile", "businesses", "--json", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["inserted"], summary["invalid"]) == ("succeeded", 3, 0)
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.select(categories.c.name)).scalars().all()
    finally:
        engine.dispose()
    assert names == ["Boulangerie du coin"]


@pytest.mark.parametrize("dry_run", [False, True], ids=["real_run", "dry_run"])
def test_import_with_no_create_categories_rejects_rows_naming_an_unknown_category(cli_env, db_url, tmp_path,
                                                                                   dry_run):
    migrate.upgrade(db_url)
    path = write_businesses(tmp_path / "entreprises.csv")
    result = nightshift("import", str(path), "--profile", "businesses", "--no-create-categories", "--json",
                        *(["--dry-run"] if dry_run else []), env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["inserted"], summary["invalid"]) == ("partial", 2, 1)
    [error] = summary["errors"]
    assert (error["line"], error["column"], error["code"]) == (2, "categorie", "unknown_category")
    assert error["value"] == "Boulangerie du coin" and "Boulangerie du coin" in error["message"]
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(categories)).scalar_one() == 0
    finally:
        engine.dispose()
