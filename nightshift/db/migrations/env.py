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
            context.configure(
                connection=connection,
                target_metadata=metadata,
                # SQLite cannot ALTER most things: later migrations copy-and-move tables in batch mode.
                render_as_batch=is_sqlite(url),
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
