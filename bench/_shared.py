"""What every benchmark shares: scratch PostgreSQL databases and its own section of BENCHMARKS.md."""

import os
import uuid
from pathlib import Path

import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = PROJECT_ROOT / "BENCHMARKS.md"
PG_ADMIN_URL = os.environ.get("NIGHTSHIFT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# The hand-written section, always last: the measurements behind design choices.
DESIGN_MEASUREMENTS = "## Measurements behind design choices"


def create_pg_database() -> str:
    name = f"nightshift_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.engine.make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def write_section(heading: str, lines: list[str]) -> None:
    """Replace the `## heading` section of BENCHMARKS.md with `lines` (added before the design
    measurements when new); every other benchmark's section stays as it is."""
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else "# Benchmarks\n"
    body = "\n".join([heading, *lines]).rstrip("\n") + "\n"
    start = text.find(heading + "\n")
    if start < 0:
        start = text.find(DESIGN_MEASUREMENTS)
        start = start if start >= 0 else len(text)
        end = start
    else:
        following = text.find("\n## ", start + len(heading))
        end = following + 1 if following >= 0 else len(text)
    before, after = text[:start].rstrip("\n") + "\n\n", text[end:]
    BENCHMARKS.write_text(before + body + ("\n" + after if after else ""), encoding="utf-8")
