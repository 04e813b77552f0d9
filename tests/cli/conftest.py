"""Fixtures of the CLI tests."""

import os
from pathlib import Path

import pytest


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
