"""`nightshift tokens …` as scripts run it (the console script in a subprocess): JSON contracts and exit codes."""

import json

import pytest
import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from tests.conftest import nightshift


@pytest.fixture
def tokens(cli_env, db_url, tmp_path):
    """`nightshift tokens ARGS…` on a migrated database with the account fox (20,000 tokens a month)."""
    migrate.upgrade(db_url)
    added = nightshift("accounts", "add", "fox", "--quota", "20000", env=cli_env, cwd=tmp_path)
    assert added.returncode == 0, added.stderr

    def run(*args: str):
        return nightshift("tokens", *args, env=cli_env, cwd=tmp_path)

    return run


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_reset_twice_exits_0_and_the_second_says_already_open(tokens):
    plan = tokens("reset", "--month", "2026-10", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert last_json(plan) == {"month": "2026-10", "dry_run": True, "opened": 1, "already_open": 0, "granted": 20000,
                               "rolled_over": 0, "regranted": 0, "low_balance_accounts": 0}
    status = last_json(tokens("status", "--month", "2026-10", "--json"))
    assert status == {"month": "2026-10", "accounts": []}  # the dry run changed nothing it shows
    first, second = (tokens("reset", "--month", "2026-10", "--json") for _ in range(2))
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert (last_json(first)["opened"], last_json(second)["opened"], last_json(second)["already_open"]) == (1, 0, 1)
    assert last_json(first)["run_id"] != last_json(second)["run_id"]
    [row] = last_json(tokens("status", "--month", "2026-10", "--json"))["accounts"]
    assert (row["granted"], row["remaining"]) == (20000, 20000)


def test_reserve_settle_release_contracts(tokens):
    reserved = tokens("reserve", "fox", "5000", "--key", "req-1", "--ttl", "120", "--json")
    assert reserved.returncode == 0, reserved.stderr
    reservation = last_json(reserved)
    assert set(reservation) == {"reservation_id", "account", "tokens", "period", "expires_at", "remaining"}
    assert (reservation["account"], reservation["tokens"], reservation["remaining"]) == ("fox", 5000, 15000)
    again = last_json(tokens("reserve", "fox", "5000", "--key", "req-1", "--json"))
    assert again["reservation_id"] == reservation["reservation_id"] and again["remaining"] == 15000

    tokens("reserve", "fox", "8000", "--key", "req-2", "--json")
    refused = tokens("reserve", "fox", "8000", "--key", "req-3", "--json")
    assert refused.returncode == 1
    assert last_json(refused) == {"error": "insufficient_tokens", "account": "fox", "requested": 8000,
                                  "remaining": 7000}

    rid = str(reservation["reservation_id"])
    settled = last_json(tokens("settle", rid, "6500", "--json"))
    assert (settled["kind"], settled["tokens"], settled["replayed"]) == ("settle", 6500, False)
    assert last_json(tokens("settle", rid, "6500", "--json"))["replayed"] is True
    refused_release = tokens("release", rid)
    assert refused_release.returncode == 2 and "already settled" in refused_release.stderr
    [row] = last_json(tokens("status", "--account", "fox", "--json"))["accounts"]
    assert (row["used"], row["reserved"], row["remaining"]) == (6500, 8000, 5500)

    kinds = [entry["kind"] for entry in last_json(tokens("ledger", "fox", "--json"))]
    assert kinds == ["grant", "reserve", "reserve", "settle"]


def test_grant_and_forced_reset_keep_their_reason_in_the_ledger(tokens):
    assert tokens("reset", "--json").returncode == 0
    granted = last_json(tokens("grant", "fox", "1000", "--reason", "support ticket 7", "--key", "t7", "--json"))
    assert (granted["granted"], granted["remaining"]) == (True, 21000)
    assert last_json(tokens("grant", "fox", "1000", "--reason", "support ticket 7", "--key", "t7", "--json")
                     )["granted"] is False
    forced = tokens("reset", "--force", "--reason", "migration from the old system", "--json")
    assert forced.returncode == 0, forced.stderr
    assert last_json(forced)["regranted"] == 20000
    reasons = [entry["reason"] for entry in last_json(tokens("ledger", "fox", "--json"))]
    assert reasons == ["monthly quota", "support ticket 7", "forced reset: migration from the old system"]


def test_reconcile_exits_1_on_a_drift_and_0_once_repaired(tokens, db_url):
    assert tokens("reset").returncode == 0
    assert tokens("reconcile").returncode == 0
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE token_periods SET granted = granted + 99"))
    engine.dispose()
    found = tokens("reconcile", "--json")
    assert found.returncode == 1
    assert (last_json(found)["passed"], last_json(found)["granted_drift"]) == (False, 99)
    assert tokens("reconcile", "--repair").returncode == 0
    assert last_json(tokens("reconcile", "--json"))["passed"] is True


@pytest.mark.parametrize("args, message", [
    (["reset", "--month", "2026/10"], "YYYY-MM"),
    (["reset", "--month", "2025-06"], "quotas.first_month"),
    (["reset", "--month", "2099-01"], "this month"),
    (["reset", "--force"], "--reason"),
    (["reset", "--reason", "why"], "--force"),
    (["reserve", "ghost", "10", "--key", "k"], "no account 'ghost'"),
    (["settle", "999", "10"], "no reservation 999"),
    (["status", "--account", "ghost"], "no account 'ghost'"),
    (["grant", "fox", "10", "--reason", "  "], "reason"),
])
def test_bad_input_exits_2_in_one_line(tokens, args, message):
    result = tokens(*args)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
