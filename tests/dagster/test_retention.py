"""The cleanup job in process on both databases: metadata per policy, run config ages, dry runs, the Dagster
instance's partitions and runs; its schedules, retry policies and the instance's tick retention."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.runs.schema import RunsTable

from assets.imports import import_files
from nightshift.config import ConfigError
from nightshift.db.schema import imports, processed_messages
from pipelines.jobs.retention import CLEANUP_OPS, cleanup_run_config
from tests.conftest import PROJECT_ROOT, app_resources, definitions
from tests.retention import rows


def _run(env, instance, **config):
    job = definitions().resolve_job_def("cleanup")
    return job.execute_in_process(instance=instance, resources=app_resources(env["url"]),
                                  run_config=cleanup_run_config(**config), raise_on_error=False)


def _metadata(result, op):
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT" and e.step_key == op]
    return output.event_specific_data.metadata


def test_cleanup_deletes_per_policy_with_numeric_metadata(env):
    now = datetime.now(UTC)
    engine = env["engine"]
    old = rows.processed_message(engine, now - timedelta(days=8))
    young = rows.processed_message(engine, now - timedelta(days=2))
    rows.alert(engine, now - timedelta(days=91))
    with dg.instance_for_test() as instance:
        result = _run(env, instance)
    assert result.success
    assert rows.ids(engine, processed_messages) == {young} and old not in rows.ids(engine, processed_messages)
    metadata = _metadata(result, "cleanup_rows")
    assert metadata["processed_messages.deleted"].value == 1
    assert metadata["processed_messages.remaining"].value == 1
    assert metadata["alerts.deleted"].value == 1
    age = metadata["processed_messages.oldest_remaining_age_s"]
    assert isinstance(age, dg.FloatMetadataValue) and 2 * 86400 <= age.value < 2 * 86400 + 600
    [report] = [r for r in result.output_for_node("cleanup_rows") if r["name"] == "processed_messages"]
    assert (report["deleted"], report["would_delete"], report["remaining"]) == (1, 0, 1)
    assert set(_metadata(result, "cleanup_imports")) >= {"imports.deleted", "import_files.remaining"}


def test_run_config_overrides_ages_like_the_old_options_and_dry_run_changes_nothing(env):
    now = datetime.now(UTC)
    engine = env["engine"]
    two_days = rows.processed_message(engine, now - timedelta(days=2))
    with dg.instance_for_test() as instance:
        dry = _run(env, instance, dry_run=True, processed_messages_days=1, only=["processed_messages"])
        assert dry.success and rows.ids(engine, processed_messages) == {two_days}
        assert _metadata(dry, "cleanup_rows")["processed_messages.would_delete"].value == 1
        assert dry.output_for_node("cleanup_imports") == [] and dry.output_for_node("cleanup_instance") == []
        real = _run(env, instance, processed_messages_days=1, only=["processed_messages"])
    assert real.success and rows.ids(engine, processed_messages) == set()


def test_an_unknown_policy_or_age_fails_the_run_without_retries(env):
    with dg.instance_for_test() as instance:
        result = _run(env, instance, only=["token_ledger"])
        assert not result.success
        failures = [e for e in result.all_events if e.is_step_failure]
        assert "--only token_ledger: no such retention policy" in str(failures[0].event_specific_data.error)
        assert not [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
        result = _run(env, instance, files_days=0)
        assert not result.success


def test_partitions_of_deleted_imports_are_retired_kept_imports_keep_theirs(env):
    now = datetime.now(UTC)
    engine = env["engine"]
    kept = rows.import_row(engine, now - timedelta(days=10), partition_key="kept-1")
    expired = rows.import_row(engine, now - timedelta(days=100), partition_key="expired-2")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(import_files.name, ["kept-1", "expired-2", "long-gone-3"])
        dry = _run(env, instance, dry_run=True)
        assert set(instance.get_dynamic_partitions(import_files.name)) == {"kept-1", "expired-2", "long-gone-3"}
        assert _metadata(dry, "cleanup_instance")["dagster_partitions.would_delete"].value == 1
        result = _run(env, instance)
        assert result.success
        assert instance.get_dynamic_partitions(import_files.name) == ["kept-1"]
        metadata = _metadata(result, "cleanup_instance")
    assert rows.ids(engine, imports) == {kept} and expired not in rows.ids(engine, imports)
    assert (metadata["dagster_partitions.deleted"].value, metadata["dagster_partitions.remaining"].value) == (2, 1)


@dg.op
def tick_op() -> None:
    pass


@dg.job(tags={"nightshift/family": "sweeps"})
def sweep_like() -> None:
    tick_op()


@dg.job
def untagged() -> None:
    tick_op()


def _backdate(instance, run_id: str, days: int) -> None:
    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=days)
    with instance.run_storage.connect() as conn:
        conn.execute(RunsTable.update().where(RunsTable.c.run_id == run_id).values(create_timestamp=moment))


def test_old_runs_of_high_frequency_families_are_deleted_others_stay(env):
    with dg.instance_for_test() as instance:
        old_sweeps = [sweep_like.execute_in_process(instance=instance).run_id for _ in range(3)]
        recent_sweep = sweep_like.execute_in_process(instance=instance).run_id
        old_untagged = untagged.execute_in_process(instance=instance).run_id
        for run_id in (*old_sweeps, old_untagged):
            _backdate(instance, run_id, 40)
        dry = _run(env, instance, dry_run=True, only=["dagster_runs"])
        assert _metadata(dry, "cleanup_instance")["dagster_runs.would_delete"].value == 3
        result = _run(env, instance, only=["dagster_runs"], run_days=30)
        assert result.success
        left = {r.run_id for r in instance.get_runs()}
        assert left.isdisjoint(old_sweeps)
        assert {recent_sweep, old_untagged, dry.run_id, result.run_id} <= left
        assert _metadata(result, "cleanup_instance")["dagster_runs.deleted"].value == 3


def test_every_op_retries_transient_errors_three_times_with_backoff_and_jitter():
    job = definitions().resolve_job_def("cleanup")
    assert {node.name for node in job.nodes} == set(CLEANUP_OPS)
    for name in CLEANUP_OPS:
        policy = job.graph.node_named(name).definition.retry_policy
        assert (policy.max_retries, policy.backoff, policy.jitter) == (3, dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)


def test_schedules_daily_at_2_and_sundays_at_3_in_the_settings_time_zone(tmp_path, monkeypatch):
    config = tmp_path / "nightshift.yaml"
    config.write_text("timezone: Africa/Bamako\n")
    monkeypatch.setenv("NIGHTSHIFT_CONFIG", str(config))
    monkeypatch.delenv("NIGHTSHIFT_TIMEZONE", raising=False)
    repo = definitions().get_repository_def()
    daily, weekly = repo.get_schedule_def("cleanup_daily"), repo.get_schedule_def("cleanup_weekly")
    assert (daily.cron_schedule, weekly.cron_schedule) == ("0 2 * * *", "0 3 * * 0")
    assert daily.execution_timezone == weekly.execution_timezone == "Africa/Bamako"
    job = repo.get_job("cleanup")
    rows_and_instance = {"processed_messages", "ai_requests_abandoned", "ai_requests", "notification_attempts",
                         "notifications", "webhook_events", "alerts", "dagster_partitions", "dagster_runs"}
    for schedule, expected in ((daily, rows_and_instance), (weekly, {"import_files", "imports"})):
        with dg.build_schedule_context(scheduled_execution_time=datetime(2026, 6, 7, 3, tzinfo=UTC)) as context:
            [request] = schedule.evaluate_tick(context).run_requests
        assert dg.validate_run_config(job, request.run_config)
        only = {tuple(op["config"]["only"]) for op in request.run_config["ops"].values()}
        assert len(only) == 1 and set(only.pop()) == expected


def test_a_policy_over_the_token_ledger_fails_the_code_location_load(tmp_path, monkeypatch):
    config = tmp_path / "nightshift.yaml"
    config.write_text("retention:\n  policies:\n    token_ledger: {days: 400}\n")
    monkeypatch.setenv("NIGHTSHIFT_CONFIG", str(config))
    from pipelines.definitions import defs

    with pytest.raises(ConfigError, match="retention.policies.token_ledger: the token ledger is the audit trail"):
        defs()


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/dagster.yaml"])
def test_the_instances_purge_old_schedule_and_sensor_ticks(path, tmp_path, monkeypatch):
    settings = yaml.safe_load((PROJECT_ROOT / path).read_text())["retention"]
    assert settings["schedule"]["purge_after_days"] > 0
    assert settings["sensor"]["purge_after_days"]["skipped"] > 0
    home = Path(tmp_path / "home")
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"retention": settings}))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        from dagster._core.definitions.run_request import InstigatorType
        from dagster._core.scheduler.instigation import TickStatus

        schedule = instance.get_tick_retention_settings(InstigatorType.SCHEDULE)
        sensor = instance.get_tick_retention_settings(InstigatorType.SENSOR)
    assert schedule[TickStatus.SUCCESS] == settings["schedule"]["purge_after_days"]
    assert sensor[TickStatus.SKIPPED] == settings["sensor"]["purge_after_days"]["skipped"]
    assert os.environ["DAGSTER_HOME"] == str(home)
