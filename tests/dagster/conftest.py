"""Fixtures of the Dagster tests."""

from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path, db, monkeypatch):
    """NIGHTSHIFT_* pointing at a private data folder and the parametrized database."""
    url = db.url.render_as_string(hide_password=False)
    monkeypatch.setenv("NIGHTSHIFT_DATABASE_URL", url)
    monkeypatch.setenv("NIGHTSHIFT_DATA_DIR", str(tmp_path / "data"))
    config = tmp_path / "nightshift.yaml"
    # The upload sensor's ticks decide (no wait within a tick): the tests tick it by hand.
    config.write_text("imports: {settle_seconds: 0}\n")
    monkeypatch.setenv("NIGHTSHIFT_CONFIG", str(config))
    uploads = tmp_path / "data" / "uploads"
    uploads.mkdir(parents=True)
    return {"url": url, "uploads": uploads, "data": tmp_path / "data", "engine": db}

