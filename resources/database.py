"""The application database as a Dagster resource."""

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from nightshift.config import Settings
from nightshift.db.engine import create_engine


class Database(dg.ConfigurableResource):
    """SQLAlchemy engine on the database URL of nightshift's settings.

    The URL comes from the settings the process loaded (NIGHTSHIFT_DATABASE_URL or the YAML file), never
    from run config, so a password never lands in run config or UI metadata.
    """

    settings: dg.ResourceDependency[Settings]

    _engine: Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.settings.database_url)
        return self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
