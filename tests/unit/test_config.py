from pathlib import Path

import pytest

from nightshift.config import ConfigError, load_settings


def test_defaults_are_the_embedded_setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.database_url == "sqlite:///data/nightshift.db"
    assert settings.data_dir == Path("data")
    assert settings.timezone == "UTC"
    assert settings.lang == "fr"
    assert settings.config_file is None
    assert settings.imports.max_rows == 1_000_000
    assert settings.imports.max_bytes == 200 * 1024 * 1024


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({
        "NIGHTSHIFT_DATABASE_URL": "postgresql+psycopg://app@db/nightshift",
        "NIGHTSHIFT_DATA_DIR": "/srv/nightshift",
        "NIGHTSHIFT_TIMEZONE": "Africa/Bamako",
        "NIGHTSHIFT_LANG": "EN",
    })
    assert settings.database_url == "postgresql+psycopg://app@db/nightshift"
    assert settings.uploads_dir == Path("/srv/nightshift/uploads")
    assert settings.tz.key == "Africa/Bamako"
    assert settings.lang == "en"


def test_yaml_file_sets_structured_settings_and_env_wins(tmp_path):
    config = tmp_path / "custom.yaml"
    config.write_text("timezone: Africa/Kinshasa\nimports:\n  max_rows: 5000\n  default_phone_region: CD\n")
    settings = load_settings({"NIGHTSHIFT_CONFIG": str(config), "NIGHTSHIFT_TIMEZONE": "UTC"})
    assert settings.timezone == "UTC"
    assert settings.imports.max_rows == 5000
    assert settings.imports.default_phone_region == "CD"
    assert settings.config_file == config


def test_quota_settings_from_yaml(tmp_path):
    config = tmp_path / "nightshift.yaml"
    config.write_text("quotas:\n  max_hold_tokens: 4000\n  settle_grace_hours: 72\n  first_month: '2025-11'\n")
    quotas = load_settings({"NIGHTSHIFT_CONFIG": str(config)}).quotas
    assert (quotas.max_hold_tokens, quotas.settle_grace_hours, quotas.first_month, quotas.default_ttl_seconds) == (
        4000, 72, "2025-11", 600)


@pytest.mark.parametrize(
    ("env", "yaml_text", "named"),
    [
        ({"NIGHTSHIFT_TIMEZONE": "Mars/Olympus"}, None, "NIGHTSHIFT_TIMEZONE"),
        ({"NIGHTSHIFT_LANG": "de"}, None, "NIGHTSHIFT_LANG"),
        ({"NIGHTSHIFT_DATABASE_URL": "mysql://x@y/z"}, None, "NIGHTSHIFT_DATABASE_URL"),
        ({"NIGHTSHIFT_DATABASE_URL": "not a url"}, None, "NIGHTSHIFT_DATABASE_URL"),
        ({}, "imports:\n  max_rowz: 5\n", "imports.max_rowz"),
        ({}, "imports:\n  max_rows: many\n", "imports.max_rows"),
        ({}, "imports:\n  max_rows: -1\n", "imports.max_rows"),
        ({}, "imports:\n  default_phone_region: XX\n", "imports.default_phone_region"),
        ({}, "imports:\n  settle_seconds: -1\n", "imports.settle_seconds"),
        ({}, "imports:\n  settle_seconds: 45\n", "imports.settle_seconds"),
        ({}, "retention_dayz: 3\n", "retention_dayz"),
        ({}, "quotas:\n  max_hold: 5\n", "quotas.max_hold"),
        ({}, "quotas:\n  max_hold_tokens: 0\n", "quotas.max_hold_tokens"),
        ({}, "quotas:\n  settle_grace_hours: -1\n", "quotas.settle_grace_hours"),
        ({}, "quotas:\n  first_month: 2026-1\n", "quotas.first_month"),
        ({}, "- a list\n", "NIGHTSHIFT_CONFIG"),
        ({}, "imports: [1, 2\n", "NIGHTSHIFT_CONFIG"),
    ],
)
def test_invalid_settings_fail_fast_naming_the_key(tmp_path, env, yaml_text, named):
    environ = dict(env)
    if yaml_text is not None:
        config = tmp_path / "nightshift.yaml"
        config.write_text(yaml_text)
        environ["NIGHTSHIFT_CONFIG"] = str(config)
    with pytest.raises(ConfigError) as excinfo:
        load_settings(environ)
    assert str(excinfo.value).startswith(named)


def test_a_named_config_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({"NIGHTSHIFT_CONFIG": str(tmp_path / "missing.yaml")})


def test_env_example_documents_every_variable():
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    for variable in ("NIGHTSHIFT_DATABASE_URL", "NIGHTSHIFT_DATA_DIR", "NIGHTSHIFT_TIMEZONE",
                     "NIGHTSHIFT_LANG", "NIGHTSHIFT_CONFIG", "DAGSTER_HOME"):
        assert variable in example
