"""`nightshift cleanup` (the `cleanup` job: the retention policies) and `nightshift cleanup policies`.

The options of the old cleanup commands keep their names (--processed-messages-days,
--completed-requests-days, --abandoned-requests-hours, --attempts-days, --imports-days, --files-days); every
other policy has one of the same form.
"""

import json
import sys
from typing import Any

import click

from nightshift.retention.policies import POLICIES
from pipelines.cli.runner import EXIT_OK, current_settings, json_option, report, require_migrated, run_job

# One option per policy age, plus the age of the Dagster runs deleted.
AGE_OPTIONS = (*(p.option for p in POLICIES), "run_days")
LEDGER_NOTE = "token_ledger: never deleted (the audit trail of every token granted, reserved and spent)"


def _age_options(function):
    policy_of = {p.option: p.name for p in POLICIES} | {"run_days": "dagster_runs"}
    for option in reversed(AGE_OPTIONS):
        unit = "hours" if option.endswith("_hours") else "days"
        function = click.option(f"--{option.replace('_', '-')}", option, type=click.IntRange(min=1),
                                help=f"Age in {unit} of the {policy_of[option]} policy, for this run.")(function)
    return function


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 86400:.1f} d" if seconds >= 86400 else f"{seconds / 3600:.1f} h"


@click.group("cleanup", invoke_without_command=True)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted (rows, oldest, bytes); change nothing.")
@click.option("--only", "only", multiple=True, metavar="POLICY",
              help="Run only this policy (repeatable); `nightshift cleanup policies` lists them.")
@_age_options
@json_option
@click.pass_context
def cleanup(ctx: click.Context, dry_run: bool, only: tuple[str, ...], as_json: bool, **ages: int | None) -> None:
    """Apply the retention policies: app tables, import files and logs, the Dagster instance (the job the
    schedules run). Deletes in batches; safe to stop and run again.

    Exit 0 when the run succeeded, 1 when it failed, 2 for bad options or settings.
    """
    if ctx.invoked_subcommand is not None:
        return
    from pipelines.jobs.retention import CLEANUP_OPS, check_only, cleanup_run_config

    check_only(list(only))
    require_migrated()
    config = {"dry_run": dry_run, "only": list(only), **{k: v for k, v in ages.items() if v is not None}}
    outcome = run_job("cleanup", run_config=cleanup_run_config(**config), quiet=as_json)
    if not outcome.success:
        report(outcome, as_json, "")
    reports = [entry for op in CLEANUP_OPS for entry in outcome.result.output_for_node(op)]
    summary = {"dry_run": dry_run, "policies": [_entry(r) for r in reports]}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(("DRY RUN — nothing deleted.\n" if dry_run else "") + _table(summary["policies"]))
        click.echo(f"run {outcome.run_id} ({outcome.duration_s:.1f} s) — open it in the Dagster UI")
    sys.exit(EXIT_OK)


def _entry(policy_report: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "deleted", "would_delete", "remaining", "oldest_remaining_age_s", "bytes")
    return {key: policy_report[key] for key in keys}


def _table(entries: list[dict[str, Any]]) -> str:
    lines = [f"{'policy':<24} {'deleted':>9} {'would delete':>13} {'remaining':>10} {'oldest':>9}"]
    for e in entries:
        size = f"  ({e['bytes']:,} bytes)" if e["bytes"] else ""
        lines.append(f"{e['name']:<24} {e['deleted']:>9,} {e['would_delete']:>13,} {e['remaining']:>10,} "
                     f"{_age(e['oldest_remaining_age_s']):>9}{size}")
    return "\n".join(lines)


@cleanup.command("policies")
@json_option
def policies(as_json: bool) -> None:
    """The retention policies as they apply (defaults, then the `retention:` settings)."""
    from nightshift.retention.policies import resolve

    settings = current_settings()
    retention = resolve(settings.retention)
    entries = [{
        "name": p.name, "group": p.group, "target": p.target, "age_column": p.age_column, "covers": p.covers_text,
        "max_age": f"{p.age_value} {p.unit}", "max_age_s": int(p.max_age.total_seconds()),
        "option": f"--{p.option.replace('_', '-')}", "action": p.action, "enabled": p.enabled,
    } for p in retention.policies]
    instance = settings.retention
    entries += [
        {"name": "dagster_partitions", "group": "instance", "target": "import_files dynamic partitions",
         "age_column": None, "covers": "partitions whose import the imports policy deleted",
         "max_age": None, "max_age_s": None, "option": None, "action": "delete", "enabled": True,
         "per_run": instance.instance_items_per_run},
        {"name": "dagster_runs", "group": "instance", "target": "Dagster runs", "age_column": "create_timestamp",
         "covers": f"finished runs of the job families {', '.join(instance.run_families)}",
         "max_age": f"{instance.run_days} days", "max_age_s": instance.run_days * 86400, "option": None,
         "action": "delete", "enabled": True, "per_run": instance.instance_items_per_run},
    ]
    if as_json:
        click.echo(json.dumps({"batch_size": retention.batch_size, "policies": entries,
                               "never_deleted": ["token_ledger"]}))
        return
    for e in entries:
        state = "" if e["enabled"] else "  (disabled)"
        age = f"older than {e['max_age']} by {e['age_column']}" if e["max_age"] else "no age"
        click.echo(f"{e['name']:<24} {e['target']}: {e['covers']}; {age}"
                   f"{'; ' + e['option'] if e['option'] else ''}{state}")
    click.echo(f"batch size: {retention.batch_size} rows per transaction")
    click.echo(LEDGER_NOTE)
