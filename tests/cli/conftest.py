"""Fixtures of the CLI tests."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines import cli


@pytest.fixture
def cli_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    """The environment of a `nightshift` subprocess on the parametrized database and private folders."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHIFT_")}
    env.update(
        NIGHTSHIFT_DATABASE_URL=db_url,
        NIGHTSHIFT_DATA_DIR=str(tmp_path / "data"),
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
    )
    return env


@pytest.fixture
def sealed_env(tmp_path: Path) -> dict[str, str]:
    """NIGHTSHIFT_* for a command run in this process: private data folder and an empty settings file, so
    neither the developer's environment nor a nightshift.yaml in the current folder leaks in."""
    config = tmp_path / "nightshift.yaml"
    config.write_text("{}\n")
    return {"NIGHTSHIFT_DATA_DIR": str(tmp_path / "data"), "NIGHTSHIFT_CONFIG": str(config),
            "NIGHTSHIFT_LANG": "en", "DAGSTER_HOME": str(tmp_path / "dagster_home")}


@pytest.fixture
def invoke_cli(sealed_env: dict[str, str]):
    """`nightshift ARGS…` in this process (click's runner) with `sealed_env`; `lang`, `env` override it."""
    def invoke(*args: str, lang: str = "en", env: dict[str, str] | None = None):
        return CliRunner().invoke(cli.main, list(args), env={**sealed_env, "NIGHTSHIFT_LANG": lang, **(env or {})})

    return invoke
