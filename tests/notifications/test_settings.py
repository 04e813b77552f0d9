"""The notifications: section of the YAML settings (health thresholds included): defaults, overrides, and bad
keys named."""

import pytest

from nightshift.config import ConfigError, load_settings


def load(tmp_path, text):
    config = tmp_path / "nightshift.yaml"
    config.write_text(text, encoding="utf-8")
    return load_settings({"NIGHTSHIFT_CONFIG": str(config)}).notifications


def test_defaults_reproduce_the_old_systems(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}).notifications
    assert set(settings.types) == {"account", "otp", "system", "notification", "urgent", "colis_status", "lot_status"}
    assert settings.types["otp"].ttl_seconds == 600 and settings.types["otp"].sensitive
    assert settings.types["account"].ttl_seconds == 86400 and settings.types["account"].sensitive
    assert settings.types["lot_status"].ttl_seconds == 48 * 3600 and not settings.types["lot_status"].sensitive
    assert settings.pacing["wachap"].min_interval_seconds == 4
    assert settings.pacing["meta"].min_interval_seconds == 1 / 70
    assert settings.pacing["sandbox"].min_interval_seconds == 0
    assert (settings.connect_timeout_seconds, settings.read_timeout_seconds) == (5, 20)
    assert settings.lease_seconds >= 2 * settings.read_timeout_seconds
    assert settings.reconcile_window_seconds == 900 and settings.breaker.probe_interval_seconds == 300
    assert settings.welcome == {}
    # The old hourly health check's thresholds.
    health = settings.health
    assert (health.failures_1h, health.permanent_24h, health.failure_rate, health.success_rate) == (20, 5, 0.5, 0.9)
    assert (health.pending_retries, health.mean_delay_seconds, health.sweep_late_seconds) == (100, 1800, 900)


def test_yaml_health_thresholds_override_only_the_keys_they_name(tmp_path):
    health = load(tmp_path, "notifications:\n  health:\n    failures_1h: 5\n    mean_delay_seconds: 600\n").health
    assert (health.failures_1h, health.mean_delay_seconds) == (5, 600.0)
    assert (health.permanent_24h, health.failure_rate, health.sweep_late_seconds) == (5, 0.5, 900)


def test_yaml_overrides_types_policies_pacing_accounts_and_welcome(tmp_path):
    settings = load(tmp_path, """
notifications:
  read_timeout_seconds: 10
  backoff:
    otp_fast: {base_seconds: 30, cap_seconds: 300, max_attempts: 4, jitter: full}
  types:
    otp: {backoff: otp_fast}
    promo: {ttl_seconds: 3600}
  pacing:
    wachap: {min_interval_seconds: 6, jitter_seconds: 9, max_concurrency: 1}
  accounts:
    - name: chine
      regions: [CN]
      phone_region: CN
      wachap_account_id: 11111111-aaaa
      pacing:
        wachap: {min_interval_seconds: 15}
    - name: mali
      source_apps: [ts-air-cargo]
  welcome:
    acme: {template: "Bienvenue {first_name} !"}
""")
    assert settings.read_timeout_seconds == 10
    assert settings.types["otp"].backoff == "otp_fast" and settings.types["otp"].ttl_seconds == 600
    assert settings.types["promo"].ttl_seconds == 3600 and not settings.types["promo"].sensitive
    assert settings.pacing_for("wachap", "chine").min_interval_seconds == 15
    assert settings.pacing_for("wachap", "mali").min_interval_seconds == 6
    assert settings.account("mali").source_apps == ("ts-air-cargo",)
    assert settings.welcome["acme"].template == "Bienvenue {first_name} !"


@pytest.mark.parametrize(("text", "named"), [
    ("notifications:\n  batch_sise: 3\n", "notifications.batch_sise"),
    ("notifications:\n  read_timeout_seconds: soon\n", "notifications.read_timeout_seconds"),
    ("notifications:\n  types:\n    otp: {ttl: 5}\n", "notifications.types.otp.ttl"),
    ("notifications:\n  types:\n    otp: {backoff: nope}\n", "notifications.types.otp.backoff"),
    ("notifications:\n  backoff:\n    x: {jitter: some}\n", "notifications.backoff.x.jitter"),
    ("notifications:\n  pacing:\n    twilio: {}\n", "notifications.pacing.twilio"),
    ("notifications:\n  pacing:\n    meta: {max_concurrency: 0}\n", "notifications.pacing.meta.max_concurrency"),
    ("notifications:\n  accounts:\n    - regions: [CN]\n", "notifications.accounts[0].name"),
    ("notifications:\n  accounts:\n    - {name: x, regions: [XX]}\n", "notifications.accounts[0].regions"),
    ("notifications:\n  welcome:\n    acme: {}\n", "notifications.welcome.acme.template"),
    ("notifications:\n  welcome:\n    acme: {template: 'Bonjour {nom}'}\n", "notifications.welcome.acme.template"),
    ("notifications:\n  default_phone_region: ZZ\n", "notifications.default_phone_region"),
    ("notifications:\n  urgent_share: 1.0\n", "notifications.urgent_share"),
    ("notifications:\n  urgent_max_priority: 0\n", "notifications.urgent_max_priority"),
    ("notifications:\n  health:\n    failures_per_hour: 3\n", "notifications.health.failures_per_hour"),
    ("notifications:\n  health:\n    failures_1h: many\n", "notifications.health.failures_1h"),
    ("notifications:\n  health:\n    failures_1h: 0\n", "notifications.health.failures_1h"),
    ("notifications:\n  health:\n    failure_rate: 50\n", "notifications.health.failure_rate"),
    ("notifications:\n  health:\n    success_rate: -0.1\n", "notifications.health.success_rate"),
    ("notifications:\n  health: [failures_1h]\n", "notifications.health"),
])
def test_bad_settings_name_the_key(tmp_path, text, named):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    assert named in str(error.value)
