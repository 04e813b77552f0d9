"""`nightshift webhooks serve`: the webhook receiver (Meta and WaChap delivery receipts, /metrics) as
its own process, like the Dagster daemon."""

import socket

import click

from nightshift import metrics
from nightshift.db.engine import create_engine
from nightshift.receiver import ReceiverConfigError, ReceiverSettings, create_app
from pipelines.cli.runner import UsageError, current_settings, require_migrated


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@click.group()
def webhooks() -> None:
    """The webhook receiver: delivery receipts from the providers, and /metrics."""


@webhooks.command("serve")
@click.option("--host", help="Address to listen on (default NIGHTSHIFT_WEBHOOKS_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default NIGHTSHIFT_WEBHOOKS_PORT or 8090).")
def serve(host: str | None, port: int | None) -> None:
    """Serve POST /webhooks/meta, GET /webhooks/meta (verification), POST /webhooks/wachap/{secret} and
    GET /metrics until stopped (Ctrl+C)."""
    import uvicorn

    settings = current_settings()
    require_migrated()
    try:
        receiver = ReceiverSettings.from_environ()
    except ReceiverConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None
    host, port = host or receiver.host, port or receiver.port
    if not port_free(host, port):
        raise click.ClickException(f"port {port} on {host} is in use: the webhook receiver did not start "
                                   "(set NIGHTSHIFT_WEBHOOKS_PORT or --port)")
    engine = create_engine(settings.database_url)
    scraped = metrics.registry(engine)
    app = create_app(engine, receiver, metrics_exposition=lambda: metrics.exposition(scraped))
    click.echo(f"webhook receiver on http://{host}:{port} (/metrics {'on' if receiver.metrics else 'off'})")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        engine.dispose()
