"""Token quotas in the UI: `token_periods` (one monthly partition per month opened for every account) and
`token_balances` (this month's balances, with the check that the period cache matches the ledger)."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from nightshift.config import Settings
from nightshift.quotas.balances import Drift, drifts, repair, status
from nightshift.quotas.periods import MonthOpening, month_of, open_month, parse_month
from resources.database import Database
from resources.families import family_tags

QUOTAS_GROUP = "quotas"
MONTH_FORMAT = "%Y-%m"
# Transient database errors only: a bad request raises Failure(allow_retries=False).
DATABASE_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
DRIFT_ROWS_SHOWN = 20


class MonthOpeningConfig(dg.Config):
    """--force --reason of the old reset command: grant this month's quota again through an adjust row."""

    force: bool = False
    reason: str = ""


class BalancesConfig(dg.Config):
    """repair: set a drifted period cache to what the ledger says (the ledger is never rewritten)."""

    repair: bool = False


def monthly_periods(settings: Settings) -> dg.MonthlyPartitionsDefinition:
    """Months in the service's time zone, the current one included (end_offset=1): a month starts at
    midnight of the 1st in NIGHTSHIFT_TIMEZONE, not in UTC."""
    return dg.MonthlyPartitionsDefinition(start_date=settings.quotas.first_month, fmt=MONTH_FORMAT,
                                          timezone=settings.timezone, end_offset=1)


def opening_metadata(opening: MonthOpening) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "month": opening.month,
        "accounts_opened": opening.opened,
        "accounts_already_open": opening.already_open,
        "tokens_granted": opening.granted,
        "tokens_rolled_over": opening.rolled_over,
        "tokens_regranted": opening.regranted,
        "accounts_low_balance": opening.low_balance_accounts,
    }
    if opening.low_balance_sample:
        metadata["low_balance_accounts"] = dg.MetadataValue.md(
            "\n".join(f"- {account}" for account in opening.low_balance_sample))
    return metadata


def token_periods_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        name="token_periods",
        partitions_def=monthly_periods(settings),
        retry_policy=DATABASE_RETRY,
        op_tags=family_tags("maintenance"),
        kinds={"sql"},
        group_name=QUOTAS_GROUP,
        description="Opens the month for every active account: its period row and grant ledger rows "
                    "(quota + rolled-over tokens). Opening a month twice is the same as once.",
    )
    def token_periods(context: dg.AssetExecutionContext, config: MonthOpeningConfig, database: Database,
                      settings: dg.ResourceParam[Settings]) -> dg.MaterializeResult:
        if config.force and not config.reason.strip():
            raise dg.Failure("force: a forced re-grant needs a reason (kept in the ledger)", allow_retries=False)
        month = parse_month(context.partition_key)
        opening = open_month(database.engine, month, force_reason=config.reason.strip() if config.force else None,
                             low_balance_tokens=settings.quotas.low_balance_tokens)
        if opening.opened:
            context.log.info(f"{opening.month}: opened for {opening.opened} account(s), {opening.granted:,} tokens "
                             f"granted ({opening.rolled_over:,} rolled over)")
        else:
            context.log.info(f"{opening.month}: already open for {opening.already_open} account(s)")
        if opening.regranted:
            context.log.info(f"{opening.month}: forced re-grant of {opening.regranted:,} tokens ({config.reason})")
        return dg.MaterializeResult(metadata=opening_metadata(opening))

    return token_periods


def _drift_table(found: list[Drift]) -> str:
    lines = ["| account | month | granted | used | reserved |", "|---|---|---|---|---|"]
    for drift in found[:DRIFT_ROWS_SHOWN]:
        cells = [f"{drift.cached[name]:,} (ledger {drift.ledger[name]:,})" if name in drift.differences else "="
                 for name in ("granted", "used", "reserved")]
        lines.append(f"| {drift.account} | {drift.month} | {' | '.join(cells)} |")
    return "\n".join(lines)


@dg.asset(
    check_specs=[dg.AssetCheckSpec(
        "cache_matches_ledger", asset="token_balances",
        description="ERROR when a period's granted / used / reserved differ from the sums of its ledger rows")],
    retry_policy=DATABASE_RETRY,
    op_tags=family_tags("maintenance"),
    kinds={"sql"},
    group_name=QUOTAS_GROUP,
    description="This month's token balances of every account, reconciled against the token ledger.",
)
def token_balances(context: dg.AssetExecutionContext, config: BalancesConfig, database: Database,
                   settings: dg.ResourceParam[Settings]) -> dg.MaterializeResult:
    found = repair(database.engine) if config.repair else drifts(database.engine)
    if found:
        verb = "repaired" if config.repair else "found"
        context.log.error(f"{verb} drift between the period cache and the ledger in {len(found)} period(s)")
    month = month_of(datetime.now(UTC), settings.tz)
    balances = status(database.engine, month)
    low = sum(1 for row in balances if row["remaining"] < settings.quotas.low_balance_tokens)
    check_metadata: dict[str, Any] = {
        "periods_drifted": len(found),
        "granted_drift": sum(abs(d.differences.get("granted", 0)) for d in found),
        "used_drift": sum(abs(d.differences.get("used", 0)) for d in found),
        "reserved_drift": sum(abs(d.differences.get("reserved", 0)) for d in found),
        "repaired": config.repair and bool(found),
    }
    if found:
        check_metadata["drifts"] = dg.MetadataValue.md(_drift_table(found))
    return dg.MaterializeResult(
        metadata={
            "month": f"{month:%Y-%m}",
            "accounts": len(balances),
            "tokens_granted": sum(row["granted"] for row in balances),
            "tokens_used": sum(row["used"] for row in balances),
            "tokens_reserved": sum(row["reserved"] for row in balances),
            "tokens_remaining": sum(row["remaining"] for row in balances),
            "accounts_low_balance": low,
        },
        check_results=[dg.AssetCheckResult(
            check_name="cache_matches_ledger", passed=not found, severity=dg.AssetCheckSeverity.ERROR,
            description=(f"{len(found)} period(s) differ from the ledger" if found else "every period matches"),
            metadata=check_metadata)],
    )
