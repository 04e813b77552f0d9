"""`nightshift accounts …`: accounts, their monthly token quota and rollover policy."""

import json
from typing import Any

import click

from nightshift.quotas.accounts import (
    ROLLOVER_POLICIES,
    AccountError,
    Rollover,
    add_account,
    deactivate,
    list_accounts,
    set_quota,
)
from pipelines.cli.runner import UsageError, app_engine, json_option, require_migrated


def _print_account(account: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(account, ensure_ascii=False))
        return
    state = "active" if account["active"] else "inactive"
    click.echo(f"{account['account']}: {account['monthly_token_quota']:,} tokens a month, rollover "
               f"{account['rollover']}, phone region {account['phone_region'] or 'default'}, {state}")


def _change(change, *args: Any, as_json: bool) -> None:
    """Run a change of the accounts core: an AccountError is bad usage (exit 2), in one line."""
    require_migrated()
    with app_engine() as engine:
        try:
            account = change(engine, *args)
        except AccountError as exc:
            raise UsageError(str(exc)) from None
    _print_account(account, as_json)


@click.group()
def accounts() -> None:
    """Accounts: monthly token quota, rollover of unused tokens, phone region."""


@accounts.command("add")
@click.argument("name")
@click.option("--quota", type=click.IntRange(min=0), required=True, help="Monthly token quota.")
@click.option("--rollover", default="none", show_default=True,
              help=f"Unused tokens at the end of a month: {' | '.join(ROLLOVER_POLICIES)}.")
@click.option("--phone-region", help="Region of phone numbers without +country code (ISO code, e.g. ML).")
@click.option("--display-name", help="Name shown to people (default: NAME).")
@json_option
def accounts_add(name: str, quota: int, rollover: str, phone_region: str | None, display_name: str | None,
                 as_json: bool) -> None:
    """Add the account NAME (lower-case letters, digits, '-', '_': the name --account and upload folders use)."""
    try:
        policy = Rollover.parse(rollover)
    except AccountError as exc:
        raise UsageError(f"--rollover: {exc}") from None
    _change(add_account, name, quota, policy, phone_region, display_name, as_json=as_json)


@accounts.command("set-quota")
@click.argument("name")
@click.argument("quota", type=click.IntRange(min=0))
@json_option
def accounts_set_quota(name: str, quota: int, as_json: bool) -> None:
    """Set NAME's monthly token quota to QUOTA."""
    _change(set_quota, name, quota, as_json=as_json)


@accounts.command("deactivate")
@click.argument("name")
@json_option
def accounts_deactivate(name: str, as_json: bool) -> None:
    """Deactivate NAME: no new token period; its data stays."""
    _change(deactivate, name, as_json=as_json)


@accounts.command("list")
@json_option
def accounts_list(as_json: bool) -> None:
    """Every account, by name."""
    require_migrated()
    with app_engine() as engine:
        rows = list_accounts(engine)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo("no accounts (add one with `nightshift accounts add NAME --quota N`)")
    for row in rows:
        _print_account(row, False)
