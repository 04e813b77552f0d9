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


def test_upgrade_keeps_the_rows_and_their_references(db_url):
    """Migrations that rebuild tables (SQLite batch mode) must not fire the ON DELETE actions of the
    rows referring to them: every row and reference survives 0002 → head → 0002."""
    migrate.upgrade(db_url, "0002")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO imports (id, file_name, sha256, size_bytes, status, stage) "
                                 "VALUES (7, 'a.csv', 'x', 1, 'succeeded', 'done')"))
            conn.execute(sa.text("INSERT INTO categories (id, name, slug, content_hash, import_id) "
                                 "VALUES (1, 'Cafés', 'cafes', 'h', 7)"))
            conn.execute(sa.text("INSERT INTO subcategories (id, category_id, name, slug, content_hash, import_id) "
                                 "VALUES (2, 1, 'Bars', 'bars', 'h', 7)"))
            conn.execute(sa.text("INSERT INTO businesses (natural_key, name, category_id, subcategory_id, "
                                 "content_hash, import_id) VALUES ('name:le-zinc|lyon', 'Le Zinc', 1, 2, 'h', 7)"))
        expected = [("Le Zinc", 1, 2, 7)]
        query = sa.text("SELECT b.name, b.category_id, b.subcategory_id, b.import_id FROM businesses b "
                        "JOIN subcategories s ON s.id = b.subcategory_id")

        migrate.upgrade(db_url)
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(query)] == expected
        migrate.downgrade(db_url, "0002")
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(query)] == expected
    finally:
        engine.dispose()
