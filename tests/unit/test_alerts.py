from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from nightshift.alerts import raise_alert
from nightshift.db.schema import alerts


def test_alerts_respect_the_cooldown_per_key(db):
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert raise_alert(db, "run_failure:x", "warning", "first", now=t0) is True
    assert raise_alert(db, "run_failure:x", "warning", "again", now=t0 + timedelta(minutes=30)) is False
    assert raise_alert(db, "run_failure:y", "critical", "other key", now=t0 + timedelta(minutes=30)) is True
    assert raise_alert(db, "run_failure:x", "warning", "later", now=t0 + timedelta(minutes=61)) is True
    with db.connect() as conn:
        rows = conn.execute(sa.select(alerts.c.alert_key, alerts.c.message).order_by(alerts.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ("run_failure:x", "first"), ("run_failure:y", "other key"), ("run_failure:x", "later")
    ]


def test_unknown_severity_is_refused(db):
    with pytest.raises(ValueError, match="severity"):
        raise_alert(db, "k", "panic", "x")
