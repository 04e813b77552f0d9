"""`nightshift`: the operator CLI, one module per command group; the convention every command follows
(run the job in process on the DAGSTER_HOME instance, summary or --json, exit codes, errors) lives in
`runner`."""

from importlib.metadata import version

import click

from pipelines.cli import accounts, ai, alerts, cleanup, db, export, imports, notify, profiles, tokens, webhooks
from pipelines.cli.runner import CommandGroup


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("nightshift"), "--version", prog_name="nightshift")
def main() -> None:
    """nightshift: batch work (imports, AI content, quotas, notifications, retention) on Dagster."""


for command in (db.init, db.db, db.health, imports.import_command, imports.imports, accounts.accounts, notify.notify,
                tokens.tokens, cleanup.cleanup, ai.ai, webhooks.webhooks, alerts.alerts, export.export_command,
                profiles.profiles):
    main.add_command(command)
