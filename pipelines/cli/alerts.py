"""`nightshift alerts …`: the alert log (list) and a test alert to the configured admin (test)."""

from datetime import UTC, datetime

import click

from nightshift.alerts import list_alerts
from pipelines.cli.runner import UsageError, app_engine, echo_json, json_option, report, require_migrated, run_job


@click.group()
def alerts() -> None:
    """The alert log and its channels (email, the admin's WhatsApp)."""


@alerts.command("list")
@click.option("--since", help="Only alerts recorded from this date (YYYY-MM-DD) on, UTC.")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@json_option
def list_command(since: str | None, limit: int, as_json: bool) -> None:
    """Alerts, newest first: key, severity, when recorded, sent (and through which channels), resolved."""
    start = None
    if since:
        try:
            start = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise UsageError(f"--since: {since!r} is not a date (YYYY-MM-DD)") from None
    require_migrated()
    with app_engine() as engine:
        found = list_alerts(engine, since=start, limit=limit)
    if as_json:
        echo_json({"alerts": [alert.as_dict() for alert in found]})
        return
    for alert in found:
        sent = f"sent {alert.sent_at:%Y-%m-%d %H:%M} via {alert.channels or 'no channel'}" if alert.sent_at \
            else "not sent"
        resolved = f", resolved {alert.resolved_at:%Y-%m-%d %H:%M}" if alert.resolved_at else ""
        click.echo(f"#{alert.id} {alert.created_at:%Y-%m-%d %H:%M} {alert.severity} {alert.alert_key}: "
                   f"{alert.message} ({sent}{resolved})")
    if not found:
        click.echo("no alerts")


@alerts.command("test")
@click.option("--channel", type=click.Choice(["email", "whatsapp"]), required=True)
@json_option
def test_command(channel: str, as_json: bool) -> None:
    """Send one test alert to the configured admin through CHANNEL, on purpose (the alert_test job)."""
    require_migrated()
    outcome = run_job("alert_test", run_config={"ops": {"send_test_alert": {"config": {"channel": channel}}}},
                      quiet=as_json)
    report(outcome, as_json, f"test alert sent through {channel}")
