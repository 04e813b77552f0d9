"""`dagster dev` serves the UI with the `nightshift` code location loaded, on SQLite instance storage
and on dagster-postgres storage (deploy/dagster.yaml)."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

from tests.conftest import PROJECT_ROOT, create_pg_database, drop_pg_database

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              sensors { name sensorState { status } }
              schedules { name executionTimezone scheduleState { status } }
            }
          }
        }
      }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def query_workspace(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 150) -> dict:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            response = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": WORKSPACE_QUERY},
                                     timeout=10)
            if response.ok:
                entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return response.json()["data"]["workspaceOrError"]
                last_error = f"location not loaded yet: {entries}"
        except requests.RequestException as exc:
            last_error = str(exc)
        time.sleep(1)
    pytest.fail(f"UI not ready within {timeout_s} s ({last_error}):\n{log.read_text()[-3000:]}")


def run_dagster_dev_and_query(tmp_path: Path, instance_yaml: Path, extra_env: dict[str, str]) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(instance_yaml, home / "dagster.yaml")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHIFT_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), NIGHTSHIFT_DATA_DIR=str(tmp_path / "data"),
               NIGHTSHIFT_DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}", **extra_env)
    log = tmp_path / "dagster_dev.log"
    with log.open("wb") as log_file:
        # Own process group: `dagster dev` does not exit promptly on SIGTERM, so the group is ended.
        process = subprocess.Popen(
            [str(PROJECT_ROOT / ".venv/bin/dagster"), "dev", "-w", "workspace.yaml",
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            return query_workspace(port, process, log)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def assert_nightshift_loaded(workspace: dict) -> None:
    [entry] = workspace["locationEntries"]
    assert entry["name"] == "nightshift"
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    [repository] = location["repositories"]
    assert {"database_health", "import_job", "import_dry_run"} <= {job["name"] for job in repository["jobs"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert sensors == {"run_failure_alerts": "RUNNING", "upload_sensor": "RUNNING",
                       "import_failure_sensor": "RUNNING"}
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
