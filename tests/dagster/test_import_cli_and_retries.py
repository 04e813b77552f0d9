"""The retry policy of import_batch (only transient database errors are retried; a bug fails the step at
once, its exception kept) and what the CLI's own Dagster run prints when the import hits a bug."""

import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from assets.imports import import_batch
from nightshift.config import load_settings
from nightshift.db import migrate
from nightshift.db.schema import cities
from nightshift.imports import intake, service
from nightshift.imports import log as import_log
from pipelines import cli
from tests.conftest import app_resources


def register(env, name: str, content: str) -> intake.Registered:
    path = env["uploads"] / name
    path.write_text(content, encoding="utf-8")
    return intake.register(env["engine"], intake.Upload(path, None, None), load_settings(), detect_duplicates=False)


def materialize(env, instance, partition_key):
    instance.add_dynamic_partitions("import_files", [partition_key])
    return dg.materialize([import_batch], instance=instance, partition_key=partition_key,
                          resources=app_resources(env["url"]), raise_on_error=False)


def retries_of(result) -> list:
    return [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_the_retry_policy_is_for_transient_errors_exponential_from_5_s_with_jitter():
    policy = import_batch.op.retry_policy
    assert (policy.max_retries, policy.delay, policy.backoff, policy.jitter) == (
        3, 5, dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)


def test_an_internal_error_fails_the_step_at_once_with_its_exception(env, monkeypatch):
    def bug(run, conn, opened):
        raise ZeroDivisionError("division by zero in the validation of a chunk")

    monkeypatch.setattr(service, "_execute", bug)
    registered = register(env, "villes.csv", "nom;code_postal\nBourg;01000\n")
    with dg.instance_for_test() as instance:
        result = materialize(env, instance, registered.partition_key)
    assert not result.success
    assert retries_of(result) == [], "a bug is not retried"
    [failure] = [e for e in result.all_events if e.is_step_failure]
    data = failure.event_specific_data
    assert data.user_failure_data is not None
    metadata = {k: v.value for k, v in data.user_failure_data.metadata.items()}
    assert metadata["failure_kind"] == "internal"
    assert metadata["error"] == "ZeroDivisionError: division by zero in the validation of a chunk"
    # The original exception and where it was raised stay visible in the step's error.
    assert data.error.cause is not None and data.error.cause.cls_name == "ZeroDivisionError"
    assert any("in bug" in frame for frame in data.error.cause.stack)
    row = import_log.get(env["engine"], registered.import_id)
    assert (row["status"], row["failure_kind"]) == ("failed", "internal")


def test_a_transient_database_error_is_retried_and_the_retry_imports_the_file(env, monkeypatch):
    execute, calls = service._execute, []

    def outage_then_recovery(run, conn, opened):
        calls.append(1)
        if len(calls) == 1:
            raise sa.exc.OperationalError("INSERT INTO cities …", {}, ConnectionError("server closed the connection"))
        return execute(run, conn, opened)

    monkeypatch.setattr(service, "_execute", outage_then_recovery)
    registered = register(env, "villes.csv", "nom;code_postal\nBourg;01000\nLyon;69001\n")
    with dg.instance_for_test() as instance:
        result = materialize(env, instance, registered.partition_key)
    assert result.success
    assert len(retries_of(result)) == 1 and len(calls) == 2
    row = import_log.get(env["engine"], registered.import_id)
    assert (row["status"], row["inserted"]) == ("succeeded", 2)
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cities)).scalar_one() == 2


@pytest.fixture
def cli_home(env, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    migrate.upgrade(env["url"])
    return env


def test_the_cli_shows_the_stack_trace_of_an_internal_error(cli_home, tmp_path, monkeypatch):
    def bug(run, conn, opened):
        raise ZeroDivisionError("division by zero in the validation of a chunk")

    monkeypatch.setattr(service, "_execute", bug)
    path = tmp_path / "villes.csv"
    path.write_text("nom;code_postal\nBourg;01000\n", encoding="utf-8")
    result = CliRunner().invoke(cli.main, ["import", str(path), "--profile", "cities"])
    assert result.exit_code == 1, result.output
    assert result.stdout.count("ZeroDivisionError: division by zero in the validation of a chunk") == 1
    assert "--verbose" in result.stdout and "Stack Trace" not in result.stderr
    verbose = CliRunner().invoke(cli.main, ["import", str(path), "--profile", "cities", "--verbose"])
    assert verbose.exit_code == 1, verbose.output
    # Enough to debug: Dagster's console log keeps the trace down to the line that raised.
    assert "Stack Trace" in verbose.stderr and "in bug" in verbose.stderr
    assert "ZeroDivisionError" in verbose.stderr


def test_the_cli_states_a_bad_file_in_one_line_without_stack_trace(cli_home, tmp_path, monkeypatch):
    monkeypatch.setenv("NIGHTSHIFT_LANG", "en")  # the texts asserted are the English ones
    path = tmp_path / "clients.csv"
    path.write_text("prenom;nom\nAwa;Traore\n", encoding="utf-8")
    result = CliRunner().invoke(cli.main, ["import", str(path), "--profile", "clients"])
    assert result.exit_code == 1, result.output
    assert "Stack Trace" not in result.stderr and "Traceback" not in result.stderr
    # Said once, first, then the summary; none of Dagster's event lines.
    assert result.stdout.startswith("clients.csv: required column(s) missing: telephone")
    assert result.output.count("required column(s) missing") == 1 and "STEP_FAILURE" not in result.stderr
