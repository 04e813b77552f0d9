"""ai_content: the AI texts of the businesses an import inserted or changed (one partition per import file,
downstream of import_batch), generated through the AIProvider and metered by the token ledger."""

from typing import Any

import dagster as dg

from assets.imports import import_batch, import_files
from nightshift.ai import states
from nightshift.ai.generate import IMPORTED, GenerationSummary, Generator, businesses_of_import
from nightshift.config import AI_KINDS, DEMO_ACCOUNT, Settings
from nightshift.imports import log as import_log
from nightshift.quotas import TokenLedger
from resources.ai import AIProvider
from resources.database import Database
from resources.families import AI_POOL, family_tags

# The old AI task's policy: 2 retries 60 s apart (jittered) for what escapes the request state machine (a
# database outage); provider failures are recorded per request and re-requested by ai_requests_sensor.
GENERATION_RETRY = dg.RetryPolicy(max_retries=2, delay=60, jitter=dg.Jitter.PLUS_MINUS)
RUN_TAGS = {**family_tags("ai"), "dagster/max_runtime": "3600"}
DEAD_LETTER_ROWS = 20


class GenerationConfig(dg.Config):
    kinds: list[str] = []  # empty: ai.kinds of the settings


def generator_for(context, database: Database, settings: Settings, ai: AIProvider) -> Generator:
    return Generator(database.engine, settings.ai, settings.lang, ai.client(),
                     TokenLedger(database.engine, settings.quotas, settings.tz),
                     rate_limit_name=ai.rate_limit_name, log=context.log.info)


def checked_kinds(kinds: list[str]) -> list[str] | None:
    unknown = [kind for kind in kinds if kind not in AI_KINDS]
    if unknown:
        raise dg.Failure(f"kinds: {', '.join(unknown)} unknown (use {', '.join(AI_KINDS)})", allow_retries=False)
    return kinds or None


def summary_metadata(summary: GenerationSummary, database: Database, settings: Settings, ai: AIProvider,
                     **extra: Any) -> dict[str, Any]:
    """Stable numeric keys for the UI's plots, what generated the text, who paid for the texts of businesses
    without an account, and the dead letters."""
    metadata: dict[str, Any] = {**extra, **summary.counts(), "provider": ai.notice,
                                "language_model": ai.is_language_model}
    if summary.default_account_texts:
        slug = settings.ai.default_account.strip()
        demo = (" — the local demo account `nightshift init` creates on a machine without accounts; give the "
                "imports an account (--account, uploads/<account>/) or set ai.default_account"
                if slug == DEMO_ACCOUNT else "")
        metadata["default_account"] = (f"{summary.default_account_texts} text(s) of businesses imported without an "
                                       f"account charged to ai.default_account {slug!r}{demo}")
    for key in ("estimated_token_share", "latency_p50_ms", "latency_p95_ms"):
        metadata[key] = dg.MetadataValue.float(float(metadata[key]))
    dead = states.dead_letters(database.engine, DEAD_LETTER_ROWS)
    if dead:
        lines = ["| request | business | kind | attempts | error |", "|---|---|---|---|---|"]
        lines += [f"| {row['id']} | {row['business_id']} | {row['kind']} | {row['attempts']} | {row['error_code']} |"
                  for row in dead]
        metadata["dead_letters"] = dg.MetadataValue.md("\n".join(lines))
    return metadata


@dg.asset(
    partitions_def=import_files,
    deps=[import_batch],
    retry_policy=GENERATION_RETRY,
    op_tags=family_tags("ai"),
    pool=AI_POOL,
    kinds={"python", "sql"},
    group_name="ai",
    description="AI texts (description, meta description, FAQ) of the businesses the import inserted or "
                "changed; unchanged ones are skipped before any reservation, every call metered.",
)
def ai_content(context: dg.AssetExecutionContext, config: GenerationConfig, database: Database,
               settings: dg.ResourceParam[Settings], ai: AIProvider) -> dg.MaterializeResult:
    row = import_log.by_partition(database.engine, context.partition_key)
    if row is None:
        raise dg.Failure(f"no import is registered for partition {context.partition_key!r}", allow_retries=False)
    if row["status"] not in IMPORTED:
        raise dg.Failure(f"import {row['id']} is {row['status']}: no businesses to write about", allow_retries=False)
    kinds = checked_kinds(config.kinds)
    context.log.info(ai.notice)
    generator = generator_for(context, database, settings, ai)
    summary = GenerationSummary()
    generator.reap(summary)
    work = generator.plan(businesses_of_import(database.engine, row["id"]), kinds, summary)
    generator.run(work, summary)
    if summary.skipped_no_account:
        context.log.warning(f"{summary.skipped_no_account} text(s) skipped: businesses without an account and "
                            "ai.default_account names no account (nothing is generated unmetered)")
    return dg.MaterializeResult(metadata=summary_metadata(summary, database, settings, ai, import_id=row["id"]))
