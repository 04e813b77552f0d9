"""`dagster dev` as `make run` starts it, on a free port, with its instance, data folder and app database in a
temporary folder."""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT_ROOT

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


@dataclass(frozen=True)
class DagsterDev:
    """A running `dagster dev` and the environment it was started with."""

    port: int
    process: subprocess.Popen
    log: Path
    env: dict[str, str]
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                                 timeout=10)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dagster_dev_env(tmp_path: Path, instance_yaml: Path, extra_env: dict[str, str]) -> dict[str, str]:
    """The environment of `make run` pointed at tmp_path: DAGSTER_HOME holding a copy of `instance_yaml`, the
    data folder and a SQLite app database; no NIGHTSHIFT_/DAGSTER_ variable of the caller's leaks in."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(instance_yaml, home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHIFT_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), NIGHTSHIFT_DATA_DIR=str(tmp_path / "data"),
               NIGHTSHIFT_DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}", **extra_env)
    return env


@contextmanager
def running_dagster_dev(tmp_path: Path, env: dict[str, str]) -> Iterator[DagsterDev]:
    """`dagster dev -w workspace.yaml` until the block ends; then its whole process group is ended."""
    port = free_port()
    log = tmp_path / "dagster_dev.log"
    with log.open("wb") as log_file:
        # Own process group: `dagster dev` does not exit promptly on SIGTERM, so the group is ended.
        process = subprocess.Popen(
            [str(PROJECT_ROOT / ".venv/bin/dagster"), "dev", "-w", "workspace.yaml",
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            yield DagsterDev(port, process, log, env, Path(env["NIGHTSHIFT_DATA_DIR"]))
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def query_workspace(dev: DagsterDev, timeout_s: float = 150) -> dict:
    """The workspace once every code location has loaded (a failure if `dagster dev` exits or times out)."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
        try:
            workspace = dev.graphql(WORKSPACE_QUERY)["workspaceOrError"]
            entries = workspace["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return workspace
            last_error = f"location not loaded yet: {entries}"
        except requests.RequestException as exc:
            last_error = str(exc)
        time.sleep(1)
    pytest.fail(f"UI not ready within {timeout_s} s ({last_error}):\n{dev.log_tail()}")
