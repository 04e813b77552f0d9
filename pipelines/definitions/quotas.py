"""The quotas domain: monthly token periods, expired holds, and the nightly ledger reconciliation."""

from typing import Any

import dagster as dg

from assets.quotas import token_balances, token_periods_asset
from nightshift.config import Settings
from pipelines.jobs.quotas import release_expired_reservations
from resources.families import family_tags
from schedules.quotas import quota_schedules


def definitions(settings: Settings, resources: dict[str, Any]) -> dg.Definitions:
    token_periods = token_periods_asset(settings)
    tags = family_tags("maintenance")
    month_opening = dg.define_asset_job("token_month_opening", selection=[token_periods], tags=tags,
                                        description="Open a month of token periods (partition = month).")
    reconcile = dg.define_asset_job("token_reconcile", selection=[token_balances], tags=tags,
                                    description="This month's balances, checked against the token ledger.")
    return dg.Definitions(
        assets=[token_periods, token_balances],
        jobs=[month_opening, reconcile, release_expired_reservations],
        schedules=quota_schedules(settings, month_opening, reconcile),
        resources={key: resources[key] for key in ("database", "settings")},
    )
