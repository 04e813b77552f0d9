"""The application database as a Dagster resource."""


from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Connection, Engine

from nightshift.config import load_settings
from nightshift.db.engine import create_engine, read_transaction, write_transaction


class Database(dg.ConfigurableResource):
    """SQLAlchemy engine on NIGHTSHIFT_DATABASE_URL (or the embedded SQLite default).

    The URL is resolved from the environment at run time unless given, so a password never lands in
    run config or UI metadata.
    """

    url: str | None = None

    _engine: Engine | None = PrivateAttr(default=None)

    @property
    def resolved_url(self) -> str:
        return self.url or load_settings().database_url

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.resolved_url)
        return self._engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with write_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with read_transaction(self.engine) as conn:
            yield conn

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
