"""Shared fixtures: a database on SQLite and on PostgreSQL for every database behaviour.

PostgreSQL: 127.0.0.1:5432 (override with NIGHTSHIFT_TEST_PG_URL, an admin URL). One fresh database
per test session, dropped afterwards. A test whose PostgreSQL server, browser or real samples are missing
skips loudly, except under CI=true or NIGHTSHIFT_REQUIRE_ALL=1, where it fails (`unavailable`).
"""

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from nightshift.db import migrate
from nightshift.db.engine import create_engine

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = PROJECT_ROOT.parent / "shared" / "real-samples"
PG_ADMIN_URL = os.environ.get("NIGHTSHIFT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]
NIGHTSHIFT = str(PROJECT_ROOT / ".venv" / "bin" / "nightshift")


def unavailable(reason: str) -> NoReturn:
    """What a test does when something it needs is missing: a loud skip, a failure under CI."""
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("NIGHTSHIFT_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (CI=true / NIGHTSHIFT_REQUIRE_ALL=1: this test must run)")
    pytest.skip(reason)


def _admin_engine() -> Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of a reachable PostgreSQL server, or a loud skip (a failure under CI)."""
    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        unavailable(f"PostgreSQL NOT AVAILABLE at {make_url(PG_ADMIN_URL).render_as_string()}: {exc.orig}")
    return PG_ADMIN_URL


def create_pg_database(admin_url: str, prefix: str = "nightshift_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_session_url(pg_server: str) -> Iterator[str]:
    url = create_pg_database(pg_server)
    yield url
    drop_pg_database(url)


def _reset_pg(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    url = request.getfixturevalue("pg_session_url")
    _reset_pg(url)
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    """A migrated database on each backend."""
    migrate.upgrade(db_url)
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def nightshift(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The installed `nightshift` console script, run as a user runs it."""
    return subprocess.run([NIGHTSHIFT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def app_resources(url: str) -> dict:
    """The code location's shared resources as a process whose NIGHTSHIFT_DATABASE_URL is `url` builds them."""
    from nightshift.config import load_settings
    from resources import shared_resources

    return shared_resources(load_settings({**os.environ, "NIGHTSHIFT_DATABASE_URL": url}))


def definitions():
    """The code location (a dg.Definitions), built from the settings of the test's environment."""
    from nightshift.config import load_settings
    from pipelines.definitions import build_definitions

    return build_definitions(load_settings())


@pytest.fixture
def real_samples() -> Path:
    if not REAL_SAMPLES.is_dir():
        unavailable(f"REAL SAMPLES NOT FOUND at {REAL_SAMPLES}")
    return REAL_SAMPLES
