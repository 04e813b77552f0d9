"""`nightshift cleanup` and `nightshift cleanup policies` as users run them (the console script)."""

import json
from datetime import UTC, datetime, timedelta

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import processed_messages
from tests.conftest import nightshift
from tests.retention import rows

POLICY_KEYS = {"name", "deleted", "would_delete", "remaining", "oldest_remaining_age_s", "bytes"}


def test_dry_run_then_a_run_with_an_old_option(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    engine = create_engine(db_url)
    now = datetime.now(UTC)
    young = rows.processed_message(engine, now - timedelta(days=2))
    rows.processed_message(engine, now - timedelta(days=9))
    dry = nightshift("cleanup", "--dry-run", "--json", env=cli_env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    summary = json.loads(dry.stdout)
    assert summary["dry_run"] is True
    by_name = {p["name"]: p for p in summary["policies"]}
    assert all(set(p) == POLICY_KEYS for p in summary["policies"])
    assert {"processed_messages", "ai_requests_abandoned", "import_files", "imports", "dagster_runs"} <= set(by_name)
    assert (by_name["processed_messages"]["would_delete"], by_name["processed_messages"]["deleted"]) == (1, 0)
    assert len(rows.ids(engine, processed_messages)) == 2
    run = nightshift("cleanup", "--only", "processed_messages", "--processed-messages-days", "1", env=cli_env,
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "processed_messages" in run.stdout and "open it in the Dagster UI" in run.stdout
    assert rows.ids(engine, processed_messages) == set()
    assert young not in rows.ids(engine, processed_messages)
    engine.dispose()


def test_bad_options_and_settings_exit_2_in_one_line(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    config = tmp_path / "nightshift.yaml"
    config.write_text("retention:\n  policies:\n    token_ledger: {days: 365}\n")
    cases = [
        (["cleanup", "--files-days", "0"], {}, "--files-days"),
        (["cleanup", "--run-days", "-1"], {}, "--run-days"),
        (["cleanup", "--only", "ledger"], {}, "--only ledger: no such retention policy"),
        (["cleanup", "--dry-run"], {"NIGHTSHIFT_CONFIG": str(config)}, "retention.policies.token_ledger"),
    ]
    for args, extra, message in cases:
        result = nightshift(*args, env={**cli_env, **extra}, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def test_policies_lists_what_applies(cli_env, db_url, tmp_path):
    config = tmp_path / "nightshift.yaml"
    config.write_text("retention:\n  policies:\n    alerts: {days: 365}\n    webhook_events: {enabled: false}\n")
    env = {**cli_env, "NIGHTSHIFT_CONFIG": str(config)}
    listed = nightshift("cleanup", "policies", "--json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    answer = json.loads(listed.stdout)
    by_name = {p["name"]: p for p in answer["policies"]}
    assert answer["never_deleted"] == ["token_ledger"] and answer["batch_size"] == 10_000
    assert (by_name["alerts"]["max_age"], by_name["webhook_events"]["enabled"]) == ("365 days", False)
    assert by_name["ai_requests_abandoned"]["option"] == "--abandoned-requests-hours"
    assert by_name["ai_requests_abandoned"]["max_age"] == "12 hours"
    human = nightshift("cleanup", "policies", env=env, cwd=tmp_path)
    assert human.returncode == 0 and "token_ledger: never deleted" in human.stdout
    assert "--files-days" in human.stdout and "--alerts-days" in human.stdout


def test_cleanup_on_an_unmigrated_database_says_what_to_do(cli_env, tmp_path):
    result = nightshift("cleanup", env=cli_env, cwd=tmp_path)
    assert result.returncode == 2 and "nightshift db upgrade" in result.stderr
