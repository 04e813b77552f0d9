"""Alembic environment: migrations run on the engine nightshift uses (SQLite pragmas, psycopg 3)."""

from alembic import context

from nightshift.db.engine import create_engine, is_sqlite
from nightshift.db.schema import metadata

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if is_sqlite(url):
                # Batch mode rebuilds a table by copy, DROP and rename: with foreign keys on, the DROP
                # would fire the ON DELETE actions of the rows that refer to it (cascades, SET NULL).
                # The pragma only takes effect outside a transaction, hence on the driver connection.
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            context.configure(
                connection=connection,
                target_metadata=metadata,
                # SQLite cannot ALTER most things: later migrations copy-and-move tables in batch mode.
                render_as_batch=is_sqlite(url),
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if is_sqlite(url):
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
