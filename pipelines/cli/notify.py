"""`nightshift notify …`: the WhatsApp outbox (send, sweep, show, list, retry, cancel, export, stats)."""

import csv
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from nightshift.db.engine import write_transaction
from nightshift.db.schema import clients
from nightshift.imports.reading import FileRejected, open_table
from nightshift.masking import mask_phone
from nightshift.notifications import health, outbox
from nightshift.notifications.outbox import STATUSES, NotificationError
from nightshift.notifications.sweep import preview
from pipelines.cli.runner import (
    EXIT_OK,
    UsageError,
    app_engine,
    current_settings,
    echo_json,
    json_option,
    report,
    require_migrated,
    run_job,
    verbose_option,
)

EXPORT_COLUMNS = ("id", "source_app", "to", "type", "priority", "status", "attempts", "max_attempts",
                  "last_error_code", "last_error_class", "next_attempt_at", "created_at", "sent_at")



def _line(shown: dict[str, Any]) -> str:
    error = f", last error {shown['last_error_code']} ({shown['last_error_class']})" if shown["last_error_code"] else ""
    return (f"#{shown['id']} {shown['status']} {shown['source_app']} {shown['type']} p{shown['priority']} to "
            f"{shown['to']}, attempts {shown['attempts']}/{shown['max_attempts']}, next {shown['next_attempt_at']}"
            f"{error}")


@click.group()
def notify() -> None:
    """The WhatsApp outbox: enqueue, sweep (send what is due), inspect, retry, cancel, export."""


@notify.command("send")
@click.option("--app", "source_app", required=True, help="The sending app (source_app).")
@click.option("--to", "to", required=True, help="Phone number (+country code, or national for --region).")
@click.option("--body", required=True, help="The message text.")
@click.option("--type", "message_type", default="notification", show_default=True, help="Message type.")
@click.option("--priority", type=int, default=3, show_default=True, help="1 (highest) to 5.")
@click.option("--idempotency-key", help="The same key again returns the same notification, never a second one.")
@click.option("--title", help="Title shown in the outbox (not sent).")
@click.option("--category", help="Category (free text, for reports).")
@click.option("--region", help="Region of a national number (ISO code, e.g. ML); default from the settings.")
@json_option
def notify_send(source_app: str, to: str, body: str, message_type: str, priority: int, idempotency_key: str | None,
                title: str | None, category: str | None, region: str | None, as_json: bool) -> None:
    """Put one message in the outbox (the sweep sends it). Exit 2 with the reason for an invalid phone."""
    settings = current_settings()
    require_migrated()
    with app_engine() as engine:
        try:
            queued = outbox.enqueue(engine, settings.notifications, source_app=source_app, to=to, body=body,
                                    message_type=message_type, priority=priority, idempotency_key=idempotency_key,
                                    title=title, category=category, region=region and region.upper())
        except NotificationError as exc:
            raise UsageError(str(exc)) from None
    if as_json:
        echo_json(queued.as_dict())
    else:
        click.echo(f"notification {queued.id}: {queued.status}" + ("" if queued.created else
                                                                     " (already in the outbox for this key)"))


@notify.command("sweep")
@click.option("--dry-run", is_flag=True, help="Show what would be claimed; no HTTP call, nothing changed.")
@click.option("--limit", type=click.IntRange(min=1), help="Claim at most N notifications.")
@click.option("--app", "source_app", help="Only this app's notifications.")
@verbose_option
@json_option
def notify_sweep(dry_run: bool, limit: int | None, source_app: str | None, verbose: bool, as_json: bool) -> None:
    """Send the due notifications now (the job the outbox sensor and schedule run)."""
    settings = current_settings()
    require_migrated()
    if dry_run:
        with app_engine() as engine:
            rows = preview(engine, limit=limit or settings.notifications.batch_size, source_app=source_app)
        shown = [outbox.describe(row, settings.notifications) for row in rows]
        if as_json:
            echo_json({"dry_run": True, "would_claim": len(shown), "notifications": shown})
        else:
            click.echo(f"DRY RUN — nothing sent, nothing changed. {len(shown)} notification(s) would be claimed:")
            for item in shown:
                click.echo(f"  {_line(item)}")
        return
    config = {"limit": limit, "source_app": source_app}
    outcome = run_job("notification_sweep", run_config={"ops": {"send_due_notifications": {"config": config}}},
                      verbose=verbose)
    if not outcome.success:
        report(outcome, as_json, "")
    summary = outcome.result.output_for_node("sweep_summary")
    if as_json:
        echo_json({**outcome.as_dict(), "counts": summary})
        sys.exit(EXIT_OK)
    counts = ", ".join(f"{key} {summary[key]}" for key in ("claimed", "sent", "temporary", "permanent", "account",
                                                             "ambiguous", "expired", "skipped_by_breaker"))
    report(outcome, False, f"{summary['notice']}\n{counts}; oldest due {summary['oldest_due_age_s']} s")


def _notification_id(value: str) -> int:
    if not value.isdigit():
        raise UsageError(f"ID: {value!r} is not a notification id (a number, as `nightshift notify list` shows)")
    return int(value)


@notify.command("show")
@click.argument("notification_id", metavar="ID")
@json_option
def notify_show(notification_id: str, as_json: bool) -> None:
    """One notification: status, attempts, next attempt, last error, masked phone."""
    settings = current_settings()
    require_migrated()
    with app_engine() as engine:
        try:
            row = outbox.get(engine, _notification_id(notification_id))
        except NotificationError as exc:
            raise UsageError(str(exc)) from None
        shown = {**outbox.describe(row, settings.notifications),
                 "attempt_log": outbox.attempts_of(engine, row.id)}
    if as_json:
        echo_json(shown)
        return
    click.echo(_line(shown))
    for attempt in shown["attempt_log"]:
        click.echo(f"  attempt {attempt['attempt']} {attempt['started_at']}: {attempt['outcome']} "
                   f"(HTTP {attempt['http_status'] or '-'}, code {attempt['error_code'] or '-'}, "
                   f"{attempt['latency_ms'] if attempt['latency_ms'] is not None else '-'} ms)")


@notify.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--app", "source_app")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
def notify_list(status: str | None, source_app: str | None, limit: int, as_json: bool) -> None:
    """Notifications by id, phones masked."""
    settings = current_settings()
    require_migrated()
    with app_engine() as engine:
        rows = outbox.select_rows(engine, status=status, source_app=source_app, limit=limit)
    shown = [outbox.describe(row, settings.notifications) for row in rows]
    if as_json:
        echo_json(shown)
        return
    if not shown:
        click.echo("no notifications match")
    for item in shown:
        click.echo(_line(item))


@notify.command("retry")
@click.argument("notification_id", metavar="[ID]", required=False)
@click.option("--app", "source_app", help="With --failed: only this app's.")
@click.option("--failed", is_flag=True, help="Every failed notification (failed_retry and failed_final).")
@json_option
def notify_retry(notification_id: str | None, source_app: str | None, failed: bool, as_json: bool) -> None:
    """Make failed notifications due now (their attempts are kept): one ID, or --failed [--app A]."""
    if (notification_id is None) == (not failed) or (notification_id is not None and source_app):
        raise UsageError("give either one ID, or --failed (optionally with --app A)")
    current_settings()
    require_migrated()
    with app_engine() as engine:
        if notification_id is not None:
            count = outbox.retry(engine, notification_id=_notification_id(notification_id))
            if not count:
                row = outbox.get(engine, int(notification_id)) if notification_id.isdigit() else None
                raise UsageError(f"notification {notification_id} is {row.status}: only failed notifications "
                                 "can be retried (a scrubbed sensitive one cannot)")
        else:
            count = outbox.retry(engine, source_app=source_app)
    if as_json:
        echo_json({"retried": count})
    else:
        click.echo(f"{count} notification(s) due again now")


@notify.command("cancel")
@click.argument("notification_id", metavar="ID")
@json_option
def notify_cancel(notification_id: str, as_json: bool) -> None:
    """Cancel a notification that is not sent, not being sent and not final."""
    settings = current_settings()
    require_migrated()
    with app_engine() as engine:
        try:
            row = outbox.get(engine, _notification_id(notification_id))
        except NotificationError as exc:
            raise UsageError(str(exc)) from None
        if not outbox.cancel(engine, settings.notifications, row.id):
            raise UsageError(f"notification {row.id} is {row.status}: it can no longer be cancelled")
    if as_json:
        echo_json({"id": row.id, "status": "cancelled"})
    else:
        click.echo(f"notification {row.id}: cancelled")


@notify.command("export")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--app", "source_app")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Created on or after DATE (YYYY-MM-DD, UTC).")
def notify_export(status: str | None, source_app: str | None, since: datetime | None) -> None:
    """CSV of notifications on stdout (phones masked, no bodies): `… export --status failed_final > f.csv`."""
    settings = current_settings()
    require_migrated()
    start = datetime.combine(date(since.year, since.month, since.day), time(), UTC) if since else None
    with app_engine() as engine:
        rows = outbox.select_rows(engine, status=status, source_app=source_app, since=start)
    writer = csv.DictWriter(sys.stdout, fieldnames=EXPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(outbox.describe(row, settings.notifications))


# Recipient files: the phone column under one of these names (accents, case and spaces ignored).
PHONE_COLUMNS = ("telephone", "phone", "tel", "mobile", "portable", "numero", "whatsapp", "to")
MESSAGE_COLUMNS = ("message", "body", "texte", "contenu")
ENQUEUE_BATCH = 1000


def _column_key(name: str) -> str:
    plain = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().lower().strip()
    return "_".join(plain.replace("-", " ").split())


def _recipients_from_file(path: Path, max_bytes: int, max_rows: int,
                          lang: str) -> tuple[str, Iterator[tuple[int, dict]]]:
    """(the phone column as written, (line, {column key: cell}) of each row), read by the importer's reader."""
    def score(header: list[str]) -> float:
        keys = {_column_key(name) for name in header}
        return 2.0 * bool(keys & set(PHONE_COLUMNS)) + bool(keys & set(MESSAGE_COLUMNS))

    info, chunks = open_table(path, score_header=score, max_bytes=max_bytes, max_rows=max_rows, lang=lang)
    phone = next((name for name in info.header if _column_key(name) in PHONE_COLUMNS), None)
    if phone is None:
        raise UsageError(f"{path.name}: no phone column (name one of: {', '.join(PHONE_COLUMNS)})")

    def rows() -> Iterator[tuple[int, dict]]:
        for chunk in chunks:
            frame = chunk.frame
            for line, values in zip(chunk.lines.tolist(), frame.itertuples(index=False, name=None), strict=True):
                yield int(line), {_column_key(name): ("" if value is None or value != value else str(value))
                                  for name, value in zip(frame.columns, values, strict=True)}

    return phone, rows()


def _recipients_from_clients(engine, city: str | None) -> Iterator[tuple[int, dict]]:
    """The clients table's rows (their id stands for the line), of one city when given (any case)."""
    query = sa.select(clients.c.id, clients.c.phone, clients.c.first_name, clients.c.last_name,
                      clients.c.city).order_by(clients.c.id)
    if city is not None:
        query = query.where(sa.func.lower(clients.c.city) == city.strip().lower())
    with engine.connect() as conn:
        for row in conn.execute(query):
            yield row.id, {"telephone": row.phone, "first_name": row.first_name or "",
                           "last_name": row.last_name or "", "prenom": row.first_name or "", "nom": row.last_name or "",
                           "ville": row.city or "", "city": row.city or ""}


@notify.command("bulk")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option("--campaign", required=True, help="Campaign name: each recipient gets its message once per campaign.")
@click.option("--from-clients", is_flag=True, help="Every client of the clients table instead of a FILE.")
@click.option("--city", help="With --from-clients: only the clients of this city (the `ville` column of their "
                             "file; any case).")
@click.option("--body", help="Message template, columns in braces: \"Bonjour {prenom} …\" (default: the file's "
                             "message column).")
@click.option("--app", "source_app", default="bulk", show_default=True)
@click.option("--type", "message_type", default="notification", show_default=True)
@click.option("--priority", type=click.IntRange(1, 5), default=4, show_default=True)
@click.option("--dry-run", is_flag=True, help="Check every line and count; enqueue nothing.")
@json_option
def notify_bulk(path: Path | None, campaign: str, from_clients: bool, city: str | None, body: str | None,
                source_app: str, message_type: str, priority: int, dry_run: bool, as_json: bool) -> None:
    """Enqueue a campaign for the recipients of a CSV/Excel FILE (or --from-clients). Invalid numbers are
    reported per line; re-running a campaign sends nobody twice."""
    settings = current_settings()
    if (path is None) == (not from_clients):
        raise UsageError("give either a FILE of recipients or --from-clients")
    if city is not None and not from_clients:
        raise UsageError("--city chooses among the clients table: use it with --from-clients")
    if path is not None and not path.is_file():
        raise UsageError(f"{path}: no such file")
    require_migrated()
    with app_engine() as engine:
        if path is not None:
            try:
                phone_column, recipients = _recipients_from_file(path, settings.imports.max_bytes,
                                                                 settings.imports.max_rows, settings.lang)
            except FileRejected as exc:
                raise UsageError(exc.message) from None
        else:
            phone_column, recipients = "telephone", _recipients_from_clients(engine, city)
        summary = _enqueue_campaign(engine, settings, recipients, phone_column, campaign=campaign, body=body,
                                    source_app=source_app, message_type=message_type, priority=priority,
                                    dry_run=dry_run)
    if as_json:
        echo_json(summary)
        return
    label = "DRY RUN — nothing enqueued. " if dry_run else ""
    click.echo(f"{label}campaign {campaign}: {summary['enqueued']} enqueued, {summary['duplicates']} already "
               f"there, {summary['invalid']} invalid")
    for error in summary["errors"][:10]:
        click.echo(f"  line {error['line']} [{error['column']}] {error['code']}: {error['message']}")
    if len(summary["errors"]) > 10:
        click.echo("  …")


def _enqueue_campaign(engine, settings, recipients: Iterator[tuple[int, dict]], phone_column: str, *, campaign: str,
                      body: str | None, source_app: str, message_type: str, priority: int,
                      dry_run: bool) -> dict[str, Any]:
    phone_key = _column_key(phone_column)
    errors: list[dict[str, Any]] = []
    valid = enqueued = 0
    try:
        with write_transaction(engine) as conn:
            for rows in _batches(recipients, body, phone_key, phone_column, errors, settings, campaign=campaign,
                                 source_app=source_app, message_type=message_type, priority=priority):
                valid += len(rows)
                enqueued += outbox.enqueue_rows(conn, rows)
            if dry_run:
                raise _RolledBack
    except _RolledBack:
        pass
    return {"campaign": campaign, "enqueued": enqueued, "duplicates": valid - enqueued, "invalid": len(errors),
            "errors": errors, "dry_run": dry_run}


class _RolledBack(Exception):
    """A dry run's transaction ends here: everything it enqueued is rolled back."""


def _batches(recipients: Iterator[tuple[int, dict]], body: str | None, phone_key: str, phone_column: str,
             errors: list[dict[str, Any]], settings, *, campaign: str, **request: Any) -> Iterator[list[dict]]:
    """Outbox rows of the recipients, ENQUEUE_BATCH at a time, keyed by (campaign, phone); bad lines to errors."""
    batch: list[dict[str, Any]] = []
    for line, fields in recipients:
        raw = fields.get(phone_key, "").strip()
        text = _render(body, fields, line) if body is not None else next(
            (fields[key] for key in MESSAGE_COLUMNS if fields.get(key)), "")
        try:
            row = outbox.prepare(settings.notifications, to=raw, body=text, **request)
        except NotificationError as exc:
            field = str(exc).split(":", 1)[0]
            errors.append({"line": line, "column": phone_column if field == "to" else field,
                           "value": mask_phone(raw) if field == "to" else None,
                           "code": "invalid_phone" if field == "to" else f"invalid_{field}", "message": str(exc)})
            continue
        row["idempotency_key"] = f"campaign:{campaign}:{row['recipient']}"
        batch.append(row)
        if len(batch) >= ENQUEUE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _render(template: str, fields: dict[str, str], line: int) -> str:
    try:
        return template.format_map(fields)
    except (KeyError, IndexError) as exc:
        raise UsageError(f"--body: {{{exc.args[0]}}} is not a column of the recipients (line {line}; columns: "
                         f"{', '.join(sorted(fields))})") from None
    except ValueError as exc:
        raise UsageError(f"--body: not a valid template ({exc}); write columns in braces, e.g. {{prenom}}") from None


def _figures(scope: health.Scope, hours: int) -> dict[str, Any]:
    shown = scope.as_dict()
    return {**shown["windows"][f"{hours}h"], "backlog": scope.backlog, "oldest_due_age_s": scope.oldest_due_age_s,
            "pending_retries": scope.pending_retries, "breakers": scope.breakers}


@notify.command("stats")
@click.option("--app", "source_app", help="One app's figures, counting only its notifications (default: all apps).")
@click.option("--hours", type=click.IntRange(1, 24 * 90), default=24, show_default=True, help="Window in hours.")
@json_option
def stats(source_app: str | None, hours: int, as_json: bool) -> None:
    """Attempts, sent, delivered, read, failures, rates, latency, backlog and breakers over the last N hours:
    of one app (--app), or of every app and provider account (the admin's view)."""
    require_migrated()
    with app_engine() as engine:
        report = health.report(engine, hours=(hours,), source_app=source_app)
    accounts = {name: _figures(scope, hours) for name, scope in sorted(report.accounts.items())}
    payload: dict[str, Any] = {"app": source_app, "hours": hours, **_figures(report.total, hours), "accounts": accounts}
    if source_app is None:
        payload["apps"] = {name: _figures(scope, hours) for name, scope in sorted(report.apps.items())}
    if as_json:
        echo_json(payload)
        return

    def line(name: str, figures: dict[str, Any]) -> str:
        rate = "—" if figures["success_rate"] is None else f"{figures['success_rate']:.0%}"
        p95 = "—" if figures["latency_p95_s"] is None else f"{figures['latency_p95_s']:.0f} s"
        return (f"{name}: {figures['attempts']} attempts, {figures['sent']} sent, {figures['delivered']} delivered, "
                f"{figures['read']} read, {figures['temporary_failures']} temporary / {figures['permanent_failures']} "
                f"permanent failures, success {rate}, p95 enqueue→sent {p95}; backlog {figures['backlog']}, "
                f"{figures['pending_retries']} retries pending")

    click.echo(f"last {hours} h — " + line(source_app or "all apps", payload))
    for name, figures in payload.get("apps", {}).items():
        click.echo("  app " + line(name, figures))
    for name, figures in payload["accounts"].items():
        breaker = figures["breakers"].get(name, "closed")
        click.echo(f"  account {line(name, figures)}; breaker {breaker}")
