"""`dagster dev` serves the UI with the `nightshift` code location loaded, on SQLite instance storage
and on dagster-postgres storage (deploy/dagster.yaml)."""

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PROJECT_ROOT, create_pg_database, drop_pg_database
from tests.e2e.dagster_dev import dagster_dev_env, query_workspace, running_dagster_dev


def run_dagster_dev_and_query(tmp_path: Path, instance_yaml: Path, extra_env: dict[str, str]) -> dict:
    with running_dagster_dev(tmp_path, dagster_dev_env(tmp_path, instance_yaml, extra_env)) as dev:
        return query_workspace(dev)


def assert_nightshift_loaded(workspace: dict) -> None:
    [entry] = workspace["locationEntries"]
    assert entry["name"] == "nightshift"
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    [repository] = location["repositories"]
    assert {"database_health", "import_job", "import_dry_run", "notification_sweep"} <= {
        job["name"] for job in repository["jobs"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert sensors == {"run_failure_alerts": "RUNNING", "upload_sensor": "RUNNING",
                       "import_failure_sensor": "RUNNING", "outbox_sensor": "RUNNING",
                       "ai_import_sensor": "RUNNING", "ai_requests_sensor": "RUNNING",
                       "webhook_events_sensor": "RUNNING", "alerts_sensor": "RUNNING"}
    schedules = {s["name"]: s for s in repository["schedules"]}
    assert schedules["database_health_hourly"]["executionTimezone"] == "UTC"


@pytest.mark.slow
def test_ui_loads_the_code_location_on_sqlite_storage(tmp_path):
    assert_nightshift_loaded(run_dagster_dev_and_query(tmp_path, PROJECT_ROOT / "dagster.yaml", {}))


@pytest.mark.slow
def test_ui_loads_the_code_location_on_postgres_storage(tmp_path, pg_server):
    storage_url = create_pg_database(pg_server, prefix="nightshift_dagster")
    url = make_url(storage_url)
    try:
        workspace = run_dagster_dev_and_query(
            tmp_path,
            PROJECT_ROOT / "deploy" / "dagster.yaml",
            {"DAGSTER_PG_HOST": url.host, "DAGSTER_PG_PORT": str(url.port), "DAGSTER_PG_USER": url.username,
             "DAGSTER_PG_PASSWORD": url.password or "", "DAGSTER_PG_DB": url.database},
        )
        assert_nightshift_loaded(workspace)
    finally:
        drop_pg_database(storage_url)
