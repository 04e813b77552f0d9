"""`nightshift accounts …` as users run it (the console script in a subprocess)."""

import json

from nightshift.db import migrate
from tests.conftest import nightshift


def test_accounts_add_list_set_quota_deactivate(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    added = nightshift("accounts", "add", "fox-reviews", "--quota", "200000", "--rollover", "capped:50000",
                       "--phone-region", "ML", "--json", env=cli_env, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"account": "fox-reviews", "name": "fox-reviews",
                                        "monthly_token_quota": 200000, "rollover": "capped:50000",
                                        "phone_region": "ML", "active": True}
    changed = nightshift("accounts", "set-quota", "fox-reviews", "300000", env=cli_env, cwd=tmp_path)
    assert changed.returncode == 0 and "300,000 tokens a month" in changed.stdout
    assert nightshift("accounts", "deactivate", "fox-reviews", env=cli_env, cwd=tmp_path).returncode == 0
    listed = nightshift("accounts", "list", "--json", env=cli_env, cwd=tmp_path)
    [account] = json.loads(listed.stdout)
    assert (account["monthly_token_quota"], account["active"]) == (300000, False)


def test_accounts_bad_input_exits_2_in_one_line(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    cases = [
        (["accounts", "add", "fox", "--quota", "10", "--rollover", "some"], "--rollover"),
        (["accounts", "add", "Fox Reviews", "--quota", "10"], "lower-case letters"),
        (["accounts", "set-quota", "nobody", "10"], "no account 'nobody'"),
        (["accounts", "add", "fox", "--quota", "-3"], "-3"),
    ]
    for args, message in cases:
        result = nightshift(*args, env=cli_env, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def test_accounts_on_an_unmigrated_database_say_what_to_do(cli_env, tmp_path):
    result = nightshift("accounts", "list", env=cli_env, cwd=tmp_path)
    assert result.returncode == 2 and "nightshift db upgrade" in result.stderr
