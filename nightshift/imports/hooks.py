"""Extension points run inside an import's merge transaction.

NEW_CLIENT_HOOKS: called with (connection, ids of the clients this import inserted, import id). The
notifications feature registers the welcome message here; with no hook registered, nothing happens and
new clients are not even looked up.
"""

from collections.abc import Callable

from sqlalchemy.engine import Connection

NewClientHook = Callable[[Connection, list[int], int | None], None]
NEW_CLIENT_HOOKS: list[NewClientHook] = []
