"""`nightshift init`, `nightshift db …` (schema migrations) and `nightshift health`."""

import json

import click

from nightshift.db import migrate
from pipelines.cli.ai import provision_demo_account
from pipelines.cli.runner import current_settings, dagster_home, json_option, report, run_job, safe_url


@click.command()
def init() -> None:
    """Prepare a machine: data folders, DAGSTER_HOME with dagster.yaml, migrations applied, the
    instance's concurrency pools at their dagster.yaml limit, and on a machine without accounts the local
    demo account ai.default_account names (the samples' AI texts are charged to it)."""
    settings = current_settings()
    settings.ensure_data_dirs()
    home = dagster_home()
    _upgrade("head")
    _initialize_pools()
    click.echo(provision_demo_account())
    click.echo(f"data folder {settings.data_dir.resolve()} ready (drop files in {settings.uploads_dir})")
    click.echo(f"DAGSTER_HOME {home}")


def _initialize_pools() -> None:
    """Give each pool of resources.families.POOLS the instance's default limit (dagster.yaml
    `concurrency.pools.default_limit`) now: the run queue only limits a pool it already knows."""
    import dagster as dg

    from resources.families import POOLS, initialize_pools

    with dg.DagsterInstance.get() as instance:
        initialize_pools(instance)
        limit = instance.global_op_concurrency_default_limit
    click.echo(f"concurrency pools {', '.join(POOLS)}: at most {limit} runs each at once")


@click.group()
def db() -> None:
    """Database schema migrations."""


def _upgrade(revision: str) -> None:
    migrate.upgrade(current_settings().database_url, revision)
    _print_revision()


def _print_revision() -> None:
    settings = current_settings()
    revision = migrate.current_revision(settings.database_url)
    click.echo(f"database {safe_url(settings)} at revision {revision}")


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    _upgrade(revision)


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' empties the schema)."""
    migrate.downgrade(current_settings().database_url, revision)
    _print_revision()


@db.command("current")
@json_option
def db_current(as_json: bool) -> None:
    """Show the database's revision and the code's head revision."""
    settings = current_settings()
    current = migrate.current_revision(settings.database_url)
    head = migrate.head_revision()
    if as_json:
        click.echo(json.dumps({"database": safe_url(settings), "current": current, "head": head,
                               "at_head": current == head}))
    else:
        state = "up to date" if current == head else "behind: run `nightshift db upgrade`"
        click.echo(f"{safe_url(settings)}: {current or 'empty'} (head {head}, {state})")


@click.command()
@json_option
def health(as_json: bool) -> None:
    """Run the database_health job (the hourly schedule's job) now."""
    outcome = run_job("database_health")
    meta = outcome.step_metadata.get("check_database_op", {})
    report(outcome, as_json, f"database {meta.get('backend')} at revision {meta.get('revision')}, "
                             f"answered in {meta.get('latency_ms')} ms")
