from pathlib import Path

import pytest

from nightshift.config import load_settings


@pytest.fixture
def settings(tmp_path: Path, db_url: str):
    """Settings on the parametrized database with a private data folder, in English: the corpus
    (tests/corpus/expected.json) and these tests pin English fragments of the messages; the language
    tests (test_languages.py) run each language."""
    config = tmp_path / "nightshift.yaml"
    config.write_text("{}\n")
    settings = load_settings({"NIGHTSHIFT_DATABASE_URL": db_url, "NIGHTSHIFT_DATA_DIR": str(tmp_path / "data"),
                              "NIGHTSHIFT_CONFIG": str(config), "NIGHTSHIFT_LANG": "en"})
    settings.ensure_data_dirs()
    return settings
