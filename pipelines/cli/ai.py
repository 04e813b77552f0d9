"""`nightshift ai …`: generate AI content (the same jobs the sensors and the schedule run), list the
requests, show a business's texts.

generate --import ID runs ai_content_job on that import's partition; --business, --stale and every
--dry-run run ai_regeneration with the selection as run config. The summary says which provider wrote the
text: the offline default `template-v1` is not a language model.
"""


import click

from pipelines.cli.runner import (
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

CONTENT_JOB, REGENERATION_JOB, GENERATION_OP = "ai_content_job", "ai_regeneration", "generate_ai_content"
SUMMARY_KEYS = ("requested", "generated", "cached", "skipped_unchanged", "rejected", "waiting_quota", "failed",
                "tokens_settled")
# The local demo account's monthly tokens: the samples' texts (template-v1) settle about 1,500.
DEMO_QUOTA = 100_000


def provision_demo_account() -> str:
    """On a machine without any account, create the local demo account ai.default_account names by default,
    so businesses imported without an account (the samples) get their texts, metered. Anything else is left
    as it is: an install with accounts, or a default_account of its own, gets no account it did not ask for.
    What was done, as a line for `nightshift init`."""
    import sqlalchemy as sa

    from nightshift.config import DEMO_ACCOUNT
    from nightshift.db.schema import accounts
    from nightshift.quotas.accounts import AccountError, add_account

    slug = current_settings().ai.default_account.strip()
    with app_engine() as engine:
        with engine.connect() as conn:
            slugs = set(conn.execute(sa.select(accounts.c.slug)).scalars())
        if not slug:
            return "ai.default_account is empty: AI texts of businesses imported without an account are skipped"
        if slug in slugs:
            return f"ai.default_account {slug!r}: AI texts of businesses imported without an account are charged to it"
        if slug != DEMO_ACCOUNT or slugs:
            return (f"ai.default_account {slug!r} is not an account: AI texts of businesses imported without an "
                    f"account are skipped until `nightshift accounts add {slug} --quota N`")
        try:
            add_account(engine, slug, DEMO_QUOTA, display_name="Local demo account (created by nightshift init)")
        except AccountError:
            pass  # another init created it meanwhile
    return (f"account {slug!r} created: a local demo account with {DEMO_QUOTA:,} tokens a month, charged for the AI "
            "texts of businesses imported without an account (ai.default_account; set it to \"\" to skip them)")



@click.group()
def ai() -> None:
    """AI content of the imported businesses: generation, requests, texts."""


@ai.command("generate")
@click.option("--import", "import_id", type=int, help="The businesses this import inserted or changed.")
@click.option("--business", "business_ids", type=int, multiple=True, help="One business (repeatable).")
@click.option("--stale", is_flag=True, help="Contents older than ai.regenerate_after_days or of an older template.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["description", "meta_description", "faq"]),
              help="Only this kind (repeatable; default: ai.kinds).")
@click.option("--dry-run", is_flag=True,
              help="What would be generated and its token estimate: no call, no reservation.")
@json_option
def ai_generate(import_id: int | None, business_ids: tuple[int, ...], stale: bool, kinds: tuple[str, ...],
                dry_run: bool, as_json: bool) -> None:
    """Generate the texts of an import's new or changed businesses, of given businesses, or of stale ones."""
    if sum((import_id is not None, bool(business_ids), stale)) != 1:
        raise UsageError("give one of --import ID, --business ID or --stale")
    require_migrated()
    if import_id is not None and not dry_run:
        from nightshift.ai.generate import IMPORTED
        from nightshift.imports import log as import_log

        with app_engine() as engine:
            row = import_log.get(engine, import_id)
        if row is None:
            raise UsageError(f"no import {import_id}: `nightshift imports list` shows them")
        if row["status"] not in IMPORTED or not row["partition_key"]:
            raise UsageError(f"import {import_id} is {row['status']}: no businesses to write about")
        outcome = run_job(CONTENT_JOB, partition_key=row["partition_key"], quiet=as_json,
                          run_config={"ops": {"ai_content": {"config": {"kinds": list(kinds)}}}})
        metadata = materialized(outcome, "ai_content") if outcome.success else {}
    else:
        config = {"import_id": import_id or 0, "business_ids": list(business_ids), "stale": stale,
                  "kinds": list(kinds), "dry_run": dry_run}
        outcome = run_job(REGENERATION_JOB, quiet=as_json, run_config={"ops": {GENERATION_OP: {"config": config}}})
        metadata = outcome.step_metadata.get(GENERATION_OP, {})
    if not outcome.success:
        report(outcome, as_json, "")
    summary = {key: metadata.get(key, 0) for key in SUMMARY_KEYS}
    summary |= {"dry_run": dry_run, "tokens_estimated": metadata.get("tokens_estimated", 0),
                "skipped_no_account": metadata.get("skipped_no_account", 0),
                "default_account_texts": metadata.get("default_account_texts", 0),
                "retry_scheduled": metadata.get("retry_scheduled", 0), "provider": metadata.get("provider", ""),
                "run_id": outcome.run_id}
    if as_json:
        echo_json(summary)
        return
    if dry_run:
        click.echo(f"DRY RUN — nothing called, nothing reserved. Would generate {summary['requested']} text(s), "
                   f"about {summary['tokens_estimated']:,} tokens held; {summary['skipped_unchanged']} unchanged")
    else:
        click.echo(f"{summary['generated']} generated, {summary['cached']} from the cache, "
                   f"{summary['skipped_unchanged']} unchanged, {summary['rejected']} rejected by validation, "
                   f"{summary['waiting_quota']} waiting for quota, {summary['failed']} failed "
                   f"({summary['retry_scheduled']} to retry); {summary['tokens_settled']:,} tokens charged")
    if summary["default_account_texts"]:
        click.echo(f"  {metadata['default_account']}")
    if summary["skipped_no_account"]:
        click.echo(f"  {summary['skipped_no_account']} skipped: no account (ai.default_account names none: "
                   "`nightshift accounts add NAME --quota N`, then set ai.default_account)")
    click.echo(f"  provider: {summary['provider']}")
    click.echo(f"run {outcome.run_id} — open it in the Dagster UI")


@ai.command("requests")
@click.option("--status", type=click.Choice(["pending", "processing", "completed", "failed", "timeout"]))
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def ai_requests(status: str | None, limit: int, as_json: bool) -> None:
    """The latest AI requests (newest first)."""
    from nightshift.ai.generate import request_rows

    require_migrated()
    with app_engine() as engine:
        rows = request_rows(engine, status, limit)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no AI request" + (f" is {status}" if status else ""))
        return
    click.echo(f"{'id':>6} {'business':>8} {'kind':<17} {'status':<10} {'wait':<6} {'try':>3} {'tokens':>7}  error")
    for row in rows:
        tokens = row["actual_tokens"] if row["actual_tokens"] is not None else row["estimate_tokens"]
        flag = "~" if row["usage_estimated"] else " "
        click.echo(f"{row['id']:>6} {row['business_id'] or '-':>8} {row['kind']:<17} {row['status']:<10} "
                   f"{row['wait_reason'] or '':<6} {row['attempts']:>3} {tokens or 0:>6}{flag}  "
                   f"{row['error_code'] or ''}")


@ai.command("show")
@click.argument("business_id", type=int)
@json_option
def ai_show(business_id: int, as_json: bool) -> None:
    """The AI texts of one business."""
    from nightshift.ai.generate import contents_of

    require_migrated()
    with app_engine() as engine:
        contents = contents_of(engine, business_id)
    if as_json:
        echo_json({"business_id": business_id, "contents": contents})
        return
    if not contents:
        click.echo(f"business {business_id}: no AI text yet")
        return
    for content in contents:
        click.echo(f"[{content['kind']}] {content['model']} template {content['template_version']}, "
                   f"{content['updated_at']:%Y-%m-%d %H:%M} UTC (request {content['request_id']})")
        click.echo(f"  {content['text']}")
