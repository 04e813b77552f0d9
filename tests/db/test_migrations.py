import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import metadata


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_then_downgrade_removes_them(db_url):
    assert migrate.current_revision(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == migrate.head_revision()
    assert _tables(db_url) == set(metadata.tables) | {"alembic_version"}

    migrate.downgrade(db_url, "base")
    assert migrate.current_revision(db_url) is None
    assert _tables(db_url) == {"alembic_version"}

    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == migrate.head_revision()


def test_upgrade_twice_is_a_no_op(db_url):
    migrate.upgrade(db_url)
    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == migrate.head_revision()


def test_migrations_match_the_schema_metadata(db):
    """Autogenerate finds nothing to do: the migrations build exactly what schema.py declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
