import os
import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as sa

from nightshift.config import ConfigError
from nightshift.db import migrate
from nightshift.db.schema import alerts
from sensors.run_failures import run_failure_alerts
from tests.conftest import PROJECT_ROOT, app_resources, definitions


def test_definitions_load():
    dg.Definitions.validate_loadable(definitions())


def test_dagster_cli_validates_the_workspace():
    # As an operator types it on a fresh clone: no DAGSTER_HOME, so Dagster uses a temporary instance.
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_schedule_names_its_time_zone_and_needed_sensors_run_by_default():
    repo = definitions().get_repository_def()
    assert repo.schedule_defs, "the code location defines schedules"
    for schedule in repo.schedule_defs:
        assert schedule.execution_timezone, schedule.name
    sensors = {s.name: s for s in repo.sensor_defs}
    assert sensors["run_failure_alerts"].default_status == dg.DefaultSensorStatus.RUNNING


def test_every_job_carries_a_family_tag():
    for job in definitions().get_repository_def().get_all_jobs():
        if job.name.startswith("__"):
            continue
        assert job.tags.get("nightshift/family") in {"imports", "sweeps", "ai", "maintenance"}, job.name


def test_database_health_job_reports_the_revision(db_url):
    migrate.upgrade(db_url)
    job = definitions().get_job_def("database_health")
    result = job.execute_in_process(resources=app_resources(db_url))
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["revision"].value == migrate.head_revision()
    assert "| notifications | 0 |" in metadata["tables"].value


def test_database_health_job_fails_clearly_on_an_unmigrated_database(db_url):
    job = definitions().get_job_def("database_health")
    result = job.execute_in_process(resources=app_resources(db_url), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "nightshift db upgrade" in str(failure.event_specific_data.error)


def test_run_failure_sensor_records_one_alert_per_cooldown(db):
    url = db.url.render_as_string(hide_password=False)

    @dg.op
    def explode():
        raise RuntimeError("disk on fire")

    @dg.job
    def broken_job():
        explode()

    with dg.instance_for_test() as instance:
        result = broken_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure_event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        for _ in range(2):
            with dg.build_run_status_sensor_context(
                sensor_name="run_failure_alerts",
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=failure_event,
                resources=app_resources(url),
            ) as context:
                run_failure_alerts(context.for_run_failure())
    with db.connect() as conn:
        rows = conn.execute(sa.select(alerts.c.alert_key, alerts.c.severity, alerts.c.message)).all()
    assert len(rows) == 1
    assert rows[0].alert_key == "run_failure:broken_job"
    assert rows[0].severity == "warning"
    assert "broken_job failed" in rows[0].message


@pytest.mark.parametrize("module", ["nightshift"])
def test_domain_core_never_imports_dagster(module):
    code = (
        "import sys, importlib, pkgutil, nightshift\n"
        "for m in pkgutil.walk_packages(nightshift.__path__, 'nightshift.'):\n"
        "    if '.migrations' not in m.name: importlib.import_module(m.name)\n"
        "print('dagster' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


DOMAINS = {"imports", "notifications", "quotas", "ai", "retention"}


def test_every_asset_is_in_the_group_of_its_domain():
    graph = definitions().resolve_asset_graph()
    groups = {key.to_user_string(): group for group in graph.all_group_names
              for key in graph.asset_keys_for_group(group)}
    assert groups.get("import_batch") == "imports"
    assert set(groups.values()) <= DOMAINS, groups


def test_importing_the_dagster_layer_reads_no_settings():
    """A broken setting does not break an import of any module: only loading the code location reads them."""
    code = ("import importlib\n"
            "for name in ('assets.imports', 'pipelines.jobs.imports', 'pipelines.jobs.health', 'sensors.imports',\n"
            "             'sensors.run_failures', 'schedules.health', 'pipelines.definitions', 'pipelines.cli'):\n"
            "    importlib.import_module(name)\n"
            "print('imported')\n")
    env = {**os.environ, "NIGHTSHIFT_TIMEZONE": "Mars/Olympus"}
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "imported", result.stderr


def test_loading_the_code_location_names_a_bad_setting(monkeypatch):
    from pipelines.definitions import defs

    monkeypatch.setenv("NIGHTSHIFT_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="NIGHTSHIFT_TIMEZONE"):
        defs()


def test_definition_time_values_come_from_the_settings(tmp_path, monkeypatch):
    config = tmp_path / "nightshift.yaml"
    config.write_text("timezone: Africa/Kinshasa\nimports:\n  sensor_interval_seconds: 17\n")
    monkeypatch.setenv("NIGHTSHIFT_CONFIG", str(config))
    monkeypatch.delenv("NIGHTSHIFT_TIMEZONE", raising=False)
    repo = definitions().get_repository_def()
    assert repo.get_sensor_def("upload_sensor").minimum_interval_seconds == 17
    assert {s.execution_timezone for s in repo.schedule_defs} == {"Africa/Kinshasa"}
