"""The declared policies, their defaults and how the YAML settings and run options override them."""

from datetime import timedelta

import pytest

from nightshift.config import ConfigError, RetentionSettings, load_settings
from nightshift.db.schema import token_ledger
from nightshift.retention.policies import POLICIES, POLICY_NAMES, Policy, resolve


def test_the_defaults_of_the_issue():
    ages = {p.name: p.max_age for p in resolve(RetentionSettings()).policies}
    assert ages == {
        "processed_messages": timedelta(days=7), "ai_requests_abandoned": timedelta(hours=12),
        "ai_requests": timedelta(days=14), "notification_attempts": timedelta(days=30),
        "notifications": timedelta(days=90), "webhook_events": timedelta(days=30), "alerts": timedelta(days=90),
        "import_files": timedelta(days=30), "imports": timedelta(days=90),
    }
    assert resolve(RetentionSettings()).batch_size == 10_000


def test_the_old_commands_options_keep_their_names():
    options = {p.option for p in POLICIES}
    assert {"processed_messages_days", "completed_requests_days", "abandoned_requests_hours", "attempts_days",
            "imports_days", "files_days"} <= options


def test_yaml_overrides_ages_and_disables_policies(tmp_path):
    config = tmp_path / "nightshift.yaml"
    config.write_text("retention:\n  batch_size: 500\n  policies:\n    alerts: {days: 365}\n"
                      "    ai_requests_abandoned: {hours: 6}\n    webhook_events: {enabled: false}\n")
    applied = resolve(load_settings({"NIGHTSHIFT_CONFIG": str(config)}).retention)
    assert applied.batch_size == 500
    assert applied.policy("alerts").max_age == timedelta(days=365)
    assert applied.policy("ai_requests_abandoned").max_age == timedelta(hours=6)
    assert "webhook_events" not in [p.name for p in applied.selected()]


@pytest.mark.parametrize(("policies", "message"), [
    ({"token_ledger": {"days": 365}}, "retention.policies.token_ledger: the token ledger is the audit trail"),
    ({"ledger_rows": {"days": 3}}, "retention.policies.ledger_rows: no such retention policy"),
    ({"alerts": {"weeks": 3}}, "retention.policies.alerts.weeks: unknown setting (known: days, enabled)"),
    ({"ai_requests_abandoned": {"days": 1}}, "retention.policies.ai_requests_abandoned.days: unknown setting"),
    ({"alerts": {"days": 0}}, "retention.policies.alerts.days: expected a positive whole number of days, got 0"),
    ({"alerts": {"days": "90"}}, "retention.policies.alerts.days: expected a positive whole number"),
    ({"alerts": {"enabled": "no"}}, "retention.policies.alerts.enabled: expected true or false"),
])
def test_bad_overrides_are_refused_naming_the_key(policies, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        resolve(RetentionSettings(policies=policies))


def test_the_settings_refuse_unknown_keys_and_bad_values(tmp_path):
    config = tmp_path / "nightshift.yaml"
    for text, message in [("retention:\n  batch: 3\n", "retention.batch: unknown setting"),
                          ("retention:\n  batch_size: 0\n", "retention.batch_size: must be a positive integer"),
                          ("retention:\n  policies:\n    alerts: 90\n",
                           "retention.policies.alerts: expected a mapping")]:
        config.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_settings({"NIGHTSHIFT_CONFIG": str(config)})


def test_a_policy_over_the_token_ledger_cannot_be_declared():
    with pytest.raises(ValueError, match="token_ledger is the audit trail, never deleted"):
        Policy("ledger", "rows", token_ledger, "created_at", None, "", timedelta(days=1), "days", "ledger_days")


def test_run_options_override_ages_and_only_selects():
    applied = resolve(RetentionSettings()).with_ages({"files_days": 3, "abandoned_requests_hours": 2,
                                                     "imports_days": None})
    assert applied.policy("import_files").max_age == timedelta(days=3)
    assert applied.policy("ai_requests_abandoned").max_age == timedelta(hours=2)
    assert applied.policy("imports").max_age == timedelta(days=90)
    assert [p.name for p in applied.selected(["imports", "alerts"])] == ["alerts", "imports"]
    assert [p.name for p in applied.selected(group="imports")] == ["import_files", "imports"]
    with pytest.raises(ConfigError, match="--files-days: expected a positive whole number of days, got -1"):
        applied.with_ages({"files_days": -1})
    with pytest.raises(ConfigError, match="--only tokens: no such retention policy"):
        applied.selected(["tokens"])
    assert len(POLICY_NAMES) == len(set(POLICY_NAMES))


def test_every_foreign_key_into_a_table_the_policies_delete_from_keeps_valid():
    """A new table pointing at one the policies delete from must say what happens to its rows (or get a
    guard here): otherwise a cleanup fails on the key, or deletes what that table still needs."""
    from nightshift.db.schema import metadata

    guarded = {("imports", "duplicate_of_id")}  # the imports policy keeps an import a younger one duplicates
    deleted_from = {p.table.name for p in POLICIES if p.table is not None and p.action == "delete"}
    for table in metadata.tables.values():
        for key in table.foreign_keys:
            if key.column.table.name in deleted_from and (table.name, key.parent.name) not in guarded:
                assert key.ondelete in ("CASCADE", "SET NULL"), f"{table.name}.{key.parent.name}"
