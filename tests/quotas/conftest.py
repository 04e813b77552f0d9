from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest

from nightshift.config import QuotaSettings
from nightshift.quotas import TokenLedger

UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture
def make_ledger(db) -> Callable[..., TokenLedger]:
    """TokenLedger over the test database: make_ledger(tz=UTC, **QuotaSettings fields)."""

    def make(tz: ZoneInfo = UTC_ZONE, **settings) -> TokenLedger:
        return TokenLedger(db, QuotaSettings(**settings), tz)

    return make
