"""`nightshift tokens …`: monthly periods, reservations, top-ups and the ledger of token quotas.

reset, reconcile and expire run the same jobs the schedules run (recorded on the instance); reserve,
settle, release and grant call the quotas core directly, as an app would.
"""

import sys
from typing import Any

import click

from nightshift.quotas import InsufficientTokens, QuotaError, TokenLedger
from nightshift.quotas.balances import entries, status
from nightshift.quotas.periods import month_text, open_month, parse_month, period_of
from pipelines.cli.runner import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    app_engine,
    current_settings,
    echo_json,
    json_option,
    materialized,
    report,
    require_migrated,
    run_job,
)

MONTH_OPENING_JOB, RECONCILE_JOB, EXPIRY_JOB = "token_month_opening", "token_reconcile", "release_expired_reservations"



def _ledger(engine) -> TokenLedger:
    settings = current_settings()
    return TokenLedger(engine, settings.quotas, settings.tz)


def _month_option(text: str | None):
    settings = current_settings()
    try:
        month = period_of(text, settings.tz)
    except QuotaError as exc:
        raise UsageError(f"--month: {exc}") from None
    return month


@click.group()
def tokens() -> None:
    """Token quotas: monthly periods, reservations, top-ups, the ledger."""


@tokens.command("reset")
@click.option("--month", help="The month to open, YYYY-MM (default: the current month in NIGHTSHIFT_TIMEZONE).")
@click.option("--dry-run", is_flag=True, help="Say what would be opened; write nothing.")
@click.option("--force", is_flag=True, help="Grant the month's quota again (an adjust row; usage is kept).")
@click.option("--reason", help="Why --force grants again (kept in the ledger; required with --force).")
@json_option
def tokens_reset(month: str | None, dry_run: bool, force: bool, reason: str | None, as_json: bool) -> None:
    """Open a month for every active account (a second run of the same month changes nothing)."""
    if force and not (reason or "").strip():
        raise UsageError("--force needs --reason R (why the quota is granted again; kept in the ledger)")
    if reason and not force:
        raise UsageError("--reason goes with --force")
    settings = current_settings()
    period = _month_option(month)
    first, current = parse_month(settings.quotas.first_month), period_of(None, settings.tz)
    if not first <= period <= current:
        raise UsageError(f"--month {month_text(period)}: months from {month_text(first)} (quotas.first_month) to "
                         f"{month_text(current)} (this month) can be opened")
    require_migrated()
    if dry_run:
        with app_engine() as engine:
            plan = open_month(engine, period, dry_run=True, force_reason=reason if force else None,
                              low_balance_tokens=settings.quotas.low_balance_tokens).as_dict()
        _print_opening(plan, as_json)
        return
    config = {"force": force, "reason": (reason or "").strip()}
    outcome = run_job(MONTH_OPENING_JOB, partition_key=month_text(period), quiet=as_json,
                      run_config={"ops": {"token_periods": {"config": config}}})
    if not outcome.success:
        report(outcome, as_json, "")
    metadata = materialized(outcome, "token_periods")
    summary = {"month": month_text(period), "dry_run": False, "opened": metadata["accounts_opened"],
               "already_open": metadata["accounts_already_open"], "granted": metadata["tokens_granted"],
               "rolled_over": metadata["tokens_rolled_over"], "regranted": metadata["tokens_regranted"],
               "low_balance_accounts": metadata["accounts_low_balance"], "run_id": outcome.run_id}
    _print_opening(summary, as_json)


def _print_opening(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json({key: summary[key] for key in ("month", "dry_run", "opened", "already_open", "granted",
                                                   "rolled_over", "regranted", "low_balance_accounts")
                    } | ({"run_id": summary["run_id"]} if "run_id" in summary else {}))
        return
    head = "DRY RUN — nothing written. Would open" if summary["dry_run"] else "Opened"
    click.echo(f"{head} {summary['month']} for {summary['opened']} account(s) "
               f"({summary['already_open']} already open): {summary['granted']:,} tokens granted, "
               f"{summary['rolled_over']:,} of them rolled over")
    if summary["regranted"]:
        click.echo(f"  forced re-grant: {summary['regranted']:,} tokens")
    click.echo(f"  accounts under the low-balance line: {summary['low_balance_accounts']}")
    if "run_id" in summary:
        click.echo(f"run {summary['run_id']} — open it in the Dagster UI")


@tokens.command("status")
@click.option("--account", help="One account (its name).")
@click.option("--month", help="YYYY-MM (default: the current month).")
@json_option
def tokens_status(account: str | None, month: str | None, as_json: bool) -> None:
    """Quota, granted, used, reserved and remaining per account for a month."""
    period = _month_option(month)
    require_migrated()
    with app_engine() as engine:
        rows = _core(status, engine, period, account)
    if as_json:
        echo_json({"month": month_text(period), "accounts": rows})
        return
    if not rows:
        click.echo(f"{month_text(period)} is not open for {account or 'any account'}: "
                   f"`nightshift tokens reset --month {month_text(period)}` opens it")
    for row in rows:
        click.echo(f"{row['account']} {row['month']}: quota {row['quota']:,}, granted {row['granted']:,}, "
                   f"used {row['used']:,}, reserved {row['reserved']:,}, remaining {row['remaining']:,}")


def _core(function, *args, **kwargs):
    """A call of the quotas core: a refused operation is bad input (exit 2), in one line."""
    try:
        return function(*args, **kwargs)
    except InsufficientTokens:
        raise
    except QuotaError as exc:
        raise UsageError(str(exc)) from None


@tokens.command("reserve")
@click.argument("account")
@click.argument("estimate", type=click.IntRange(min=1))
@click.option("--key", required=True, help="Idempotency key: the same key again returns the same reservation.")
@click.option("--ttl", type=click.IntRange(min=1),
              help="Seconds the request may take (default: quotas.default_ttl_seconds).")
@json_option
def tokens_reserve(account: str, estimate: int, key: str, ttl: int | None, as_json: bool) -> None:
    """Hold ESTIMATE tokens of ACCOUNT's current month (at most quotas.max_hold_tokens)."""
    require_migrated()
    with app_engine() as engine:
        try:
            reservation = _core(_ledger(engine).reserve, account, estimate, key, ttl)
        except InsufficientTokens as exc:
            if as_json:
                echo_json({"error": "insufficient_tokens", "account": account, "requested": exc.requested,
                            "remaining": exc.remaining})
            else:
                click.echo(str(exc), err=True)
            sys.exit(EXIT_FAILED)
    payload = {key_: value for key_, value in reservation.as_dict().items() if key_ != "created"}
    if as_json:
        echo_json(payload)
        return
    again = "" if reservation.created else " (this key was reserved before: the same reservation)"
    click.echo(f"reservation {reservation.reservation_id}: {reservation.tokens:,} tokens of {account} for "
               f"{reservation.period}, until {reservation.expires_at.isoformat()}; "
               f"{reservation.remaining:,} left{again}")


def _print_ending(ending: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(ending)
        return
    replay = " (already done: nothing changed)" if ending["replayed"] else ""
    click.echo(f"reservation {ending['reservation_id']}: {ending['kind']} of {ending['tokens']:,} tokens "
               f"(hold {ending['hold']:,}) in {ending['period']}{replay}")


@tokens.command("settle")
@click.argument("reservation_id", type=int)
@click.argument("actual", type=click.IntRange(min=0))
@json_option
def tokens_settle(reservation_id: int, actual: int, as_json: bool) -> None:
    """Charge ACTUAL tokens (even above the hold) to the month the reservation was made in."""
    require_migrated()
    with app_engine() as engine:
        _print_ending(_core(_ledger(engine).settle, reservation_id, actual).as_dict(), as_json)


@tokens.command("release")
@click.argument("reservation_id", type=int)
@json_option
def tokens_release(reservation_id: int, as_json: bool) -> None:
    """Give a reservation's hold back (its request did not run)."""
    require_migrated()
    with app_engine() as engine:
        _print_ending(_core(_ledger(engine).release, reservation_id).as_dict(), as_json)


@tokens.command("grant")
@click.argument("account")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why (kept in the ledger).")
@click.option("--key", help="Idempotency key: the same top-up replayed grants once.")
@json_option
def tokens_grant(account: str, amount: int, reason: str, key: str | None, as_json: bool) -> None:
    """Top up ACCOUNT's current month with AMOUNT tokens (a grant row in the ledger)."""
    require_migrated()
    with app_engine() as engine:
        granted = _core(_ledger(engine).grant, account, amount, reason, key)
    if as_json:
        echo_json(granted)
        return
    done = "granted" if granted["granted"] else "already granted with this key: nothing changed"
    click.echo(f"{account} {granted['period']}: {amount:,} tokens {done}; {granted['remaining']:,} left")


@tokens.command("ledger")
@click.argument("account")
@click.option("--month", help="YYYY-MM (default: every month).")
@json_option
def tokens_ledger(account: str, month: str | None, as_json: bool) -> None:
    """ACCOUNT's ledger rows, oldest first."""
    period = _month_option(month) if month else None
    require_migrated()
    with app_engine() as engine:
        rows = _core(entries, engine, account, period)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no ledger rows for {account}")
    for row in rows:
        extra = f" reservation {row['reservation_id']}" if row["reservation_id"] else ""
        flag = " (estimated)" if row["estimated"] else ""
        click.echo(f"{row['id']:>8} {row['created_at']} {row['period']} {row['kind']:<8} {row['tokens']:>10,}"
                   f"{extra}{flag} {row['reason'] or ''}".rstrip())


@tokens.command("reconcile")
@click.option("--repair", is_flag=True, help="Set drifted period caches to what the ledger says.")
@json_option
def tokens_reconcile(repair: bool, as_json: bool) -> None:
    """Check every period's granted / used / reserved against the ledger (exit 1 on a drift not repaired)."""
    require_migrated()
    outcome = run_job(RECONCILE_JOB, quiet=as_json,
                      run_config={"ops": {"token_balances": {"config": {"repair": repair}}}})
    if not outcome.success:
        report(outcome, as_json, "")
    [check] = outcome.result.get_asset_check_evaluations()
    found = {key: getattr(value, "value", value) for key, value in check.metadata.items() if key != "drifts"}
    summary = {"passed": check.passed, "repaired": repair and not check.passed, **found, "run_id": outcome.run_id}
    if as_json:
        echo_json(summary)
    elif check.passed:
        click.echo("every token period matches its ledger")
    else:
        verb = "repaired" if repair else "found (run with --repair to fix the cache from the ledger)"
        click.echo(f"drift {verb} in {found['periods_drifted']} period(s): granted {found['granted_drift']:,}, "
                   f"used {found['used_drift']:,}, reserved {found['reserved_drift']:,} tokens off")
    sys.exit(EXIT_OK if check.passed or repair else EXIT_FAILED)


@tokens.command("expire")
@json_option
def tokens_expire(as_json: bool) -> None:
    """End every hold past its expiry now (the 5-minute schedule does it too)."""
    require_migrated()
    outcome = run_job(EXPIRY_JOB, quiet=as_json)
    if not outcome.success:
        report(outcome, as_json, "")
    metadata = outcome.step_metadata.get("expire_holds", {})
    summary = {"holds_expired": metadata.get("holds_expired", 0), "tokens_returned": metadata.get("tokens_returned", 0),
               "run_id": outcome.run_id}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"{summary['holds_expired']} expired hold(s) ended, {summary['tokens_returned']:,} tokens returned")
