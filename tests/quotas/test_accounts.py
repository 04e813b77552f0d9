"""Accounts of the quotas core, on SQLite and PostgreSQL."""

import pytest

from nightshift.quotas.accounts import AccountError, Rollover, add_account, deactivate, list_accounts, set_quota


@pytest.mark.parametrize("text, policy, cap, shown", [
    ("none", "none", None, "none"), ("FULL", "full", None, "full"), ("capped:50000", "capped", 50000, "capped:50000"),
])
def test_rollover_policies_read_and_write_back(text, policy, cap, shown):
    rollover = Rollover.parse(text)
    assert (rollover.policy, rollover.cap, str(rollover)) == (policy, cap, shown)


@pytest.mark.parametrize("text", ["capped", "capped:", "capped:-5", "capped:ten", "all", ""])
def test_a_bad_rollover_policy_names_the_accepted_ones(text):
    with pytest.raises(AccountError, match=r"none, full, capped:N"):
        Rollover.parse(text)


def test_add_set_quota_deactivate_and_list(db):
    added = add_account(db, "fox-reviews", 200_000, Rollover.parse("capped:50000"), "ml", "FOX Reviews")
    assert added == {"account": "fox-reviews", "name": "FOX Reviews", "monthly_token_quota": 200_000,
                     "rollover": "capped:50000", "phone_region": "ML", "active": True}
    add_account(db, "adha", 1_000)
    assert set_quota(db, "adha", 5_000)["monthly_token_quota"] == 5_000
    assert deactivate(db, "fox-reviews")["active"] is False
    assert [(a["account"], a["monthly_token_quota"], a["rollover"], a["active"]) for a in list_accounts(db)] == [
        ("adha", 5_000, "none", True), ("fox-reviews", 200_000, "capped:50000", False)]


def test_the_same_name_twice_is_refused_and_the_first_is_kept(db):
    add_account(db, "adha", 1_000)
    with pytest.raises(AccountError, match="exists already"):
        add_account(db, "adha", 9_999)
    assert [a["monthly_token_quota"] for a in list_accounts(db)] == [1_000]


@pytest.mark.parametrize("name, quota, region, message", [
    ("Fox Reviews", 10, None, "lower-case letters"),
    ("-fox", 10, None, "lower-case letters"),
    ("fox", -1, None, "0 or more"),
    ("fox", 10, "XX", "ISO 3166"),
])
def test_bad_values_are_refused_with_what_to_do_and_write_nothing(db, name, quota, region, message):
    with pytest.raises(AccountError, match=message):
        add_account(db, name, quota, phone_region=region)
    assert list_accounts(db) == []


def test_changing_an_unknown_account_says_how_to_list_them(db):
    with pytest.raises(AccountError, match="accounts list"):
        set_quota(db, "nobody", 10)
    with pytest.raises(AccountError, match="no account 'nobody'"):
        deactivate(db, "nobody")
