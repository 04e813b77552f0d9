"""The ai domain's op jobs: ai_regeneration (nightly: stale contents within a token budget; also the CLI's
--business / --stale / --dry-run) and ai_retry (requests due again, launched by ai_requests_sensor). Both
run the same op as ai_content does per import."""

from datetime import UTC, datetime

import dagster as dg

from assets.ai import GENERATION_RETRY, RUN_TAGS, checked_kinds, generator_for, summary_metadata
from nightshift.ai.generate import GenerationSummary, businesses_by_id, businesses_of_import, stale_businesses
from nightshift.config import Settings
from resources.ai import AIProvider
from resources.database import Database
from resources.families import AI_POOL


class GenerateConfig(dg.Config):
    import_id: int = 0  # 0: none
    business_ids: list[int] = []
    stale: bool = False
    retry_due: bool = False
    kinds: list[str] = []
    dry_run: bool = False  # what would be generated and its token estimate: no call, no reservation
    token_budget: int = -1  # -1: no budget (the schedule passes ai.regeneration_token_budget)


@dg.op(retry_policy=GENERATION_RETRY, pool=AI_POOL)
def generate_ai_content(context: dg.OpExecutionContext, config: GenerateConfig, database: Database,
                        settings: dg.ResourceParam[Settings], ai: AIProvider) -> None:
    kinds = checked_kinds(config.kinds)
    context.log.info(ai.notice)
    generator = generator_for(context, database, settings, ai)
    summary = GenerationSummary()
    if not config.dry_run:
        generator.reap(summary)
    work = []
    if config.retry_due:
        work += generator.retry_due(summary)
    if config.import_id:
        work += generator.plan(businesses_of_import(database.engine, config.import_id), kinds, summary)
    if config.business_ids:
        work += generator.plan(businesses_by_id(database.engine, config.business_ids), kinds, summary)
    if config.stale:
        work += generator.plan(stale_businesses(database.engine, settings.ai, settings.lang), kinds, summary,
                               refresh=datetime.now(UTC).date().isoformat())
    generator.run(work, summary, token_budget=config.token_budget if config.token_budget >= 0 else None,
                  dry_run=config.dry_run)
    context.add_output_metadata(summary_metadata(summary, database, settings, ai, dry_run=config.dry_run))


@dg.job(tags=RUN_TAGS, description="Regenerate AI contents: stale ones (older than ai.regenerate_after_days or "
                                   "of an older template), or the businesses given, within a token budget.")
def ai_regeneration() -> None:
    generate_ai_content()


@dg.job(tags=RUN_TAGS, description="Take the AI requests due again: waiting for quota, temporarily failed, or "
                                   "abandoned (timed out, their holds ended).")
def ai_retry() -> None:
    generate_ai_content()
