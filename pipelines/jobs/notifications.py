"""notification_sweep: expire → reap → probe open breakers → claim/send/finalise → summary; and
apply_webhook_events: the stored delivery receipts applied to their notifications.

The ops that only touch the database retry on transient errors (Dagster's retry policy); the probing
and sending ops have none: an HTTP call is never repeated by Dagster, the outbox decides when a message
goes again (its claim and finalise retry transient database errors themselves).
"""

import dagster as dg

from nightshift.alerts import raise_alert
from nightshift.config import Settings
from nightshift.masking import mask_text
from nightshift.notifications import receipts, sweep
from resources.database import Database
from resources.families import family_tags
from resources.whatsapp import WhatsAppProvider

DATABASE_RETRY = dg.RetryPolicy(max_retries=3, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)


class SweepConfig(dg.Config):
    limit: int | None = None  # at most this many notifications claimed (default: all that are due)
    source_app: str | None = None  # only this app's notifications


@dg.op(retry_policy=DATABASE_RETRY)
def expire_notifications(context: dg.OpExecutionContext, database: Database,
                         settings: dg.ResourceParam[Settings]) -> int:
    expired = sweep.expire(database.engine, settings.notifications)
    context.log.info(f"{expired} notification(s) past their TTL expired (never sent)")
    return expired


@dg.op(retry_policy=DATABASE_RETRY)
def reap_notifications(context: dg.OpExecutionContext, database: Database, settings: dg.ResourceParam[Settings],
                       expired: int) -> dict:
    reaped = dict(sweep.reap(database.engine, settings.notifications))
    context.log.info(f"reaper: {reaped or 'nothing stuck'}")
    return {"expired": expired, **reaped}


@dg.op  # a probe is an HTTP request: never repeated by Dagster
def probe_breakers(context: dg.OpExecutionContext, database: Database, settings: dg.ResourceParam[Settings],
                   whatsapp: WhatsAppProvider, housekeeping: dict) -> dict:
    probed = sweep.probe_breakers(database.engine, settings.notifications, whatsapp.backend())
    if probed:
        context.log.info(f"breaker probes: {probed}")
    return housekeeping


@dg.op
def send_due_notifications(context: dg.OpExecutionContext, config: SweepConfig, database: Database,
                           settings: dg.ResourceParam[Settings], whatsapp: WhatsAppProvider,
                           housekeeping: dict) -> dict:
    backend = whatsapp.backend()
    summary = sweep.send_due(database.engine, settings.notifications, backend, limit=config.limit,
                             source_app=config.source_app, log=context.log)
    return {**summary.as_dict(), **{key: summary.counts[key] + value for key, value in housekeeping.items()},
            "notice": whatsapp.notice}


SUMMARY_KEYS = ("claimed", "sent", "temporary", "permanent", "account", "ambiguous", "out_of_attempts", "expired",
                "released", "lost_lease", "reaped_retry", "reaped_unknown", "reconciled", "skipped_by_breaker")


@dg.op
def sweep_summary(context: dg.OpExecutionContext, result: dict) -> dict:
    metadata = {key: dg.MetadataValue.int(int(result.get(key, 0))) for key in SUMMARY_KEYS}
    metadata["oldest_due_age_s"] = dg.MetadataValue.float(float(result["oldest_due_age_s"]))
    metadata["provider"] = dg.MetadataValue.text(result["notice"])
    breakers = result.get("breakers") or {}
    metadata["breakers"] = dg.MetadataValue.md(
        "| account | breaker |\n|---|---|\n" + "\n".join(f"| {a} | {s} |" for a, s in sorted(breakers.items()))
        if breakers else "all closed")
    context.log.info(mask_text(f"{result['notice']}: claimed {result['claimed']}, sent {result['sent']}, "
                               f"temporary {result['temporary']}, permanent {result['permanent']}, "
                               f"ambiguous {result['ambiguous']}, skipped by breaker {result['skipped_by_breaker']}"))
    context.add_output_metadata(metadata)
    return result


@dg.job(tags=family_tags("sweeps"),
        description="Send the due WhatsApp notifications of the outbox (expire, reap, probe, claim/send/finalise).")
def notification_sweep() -> None:
    sweep_summary(send_due_notifications(probe_breakers(reap_notifications(expire_notifications()))))


RECEIPT_KEYS = ("applied", "stale", "orphan_waiting", "orphaned", "inbound", "ignored")


@dg.op(retry_policy=DATABASE_RETRY)
def apply_receipts(context: dg.OpExecutionContext, database: Database, settings: dg.ResourceParam[Settings]) -> dict:
    applied = receipts.apply_pending(database.engine, settings.notifications)
    if applied.orphans:
        raise_alert(database.engine, "webhook_orphans", "warning",
                    f"{len(applied.orphans)} delivery receipt(s) matched no notification within the reconcile window",
                    details={"message_ids": applied.orphans[:50]})
    context.add_output_metadata({key: dg.MetadataValue.int(applied.counts[key]) for key in RECEIPT_KEYS})
    context.log.info(", ".join(f"{key} {applied.counts[key]}" for key in RECEIPT_KEYS))
    return applied.as_dict()


@dg.job(tags=family_tags("maintenance"),
        description="Apply the stored delivery receipts (webhook events) to their notifications, forward only.")
def apply_webhook_events() -> None:
    apply_receipts()
