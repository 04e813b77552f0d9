"""alert_test: one test alert to the configured admin through one channel, on purpose (`nightshift alerts
test`). Nothing else ever sends a message to test something: the providers' probes send nothing."""

from typing import Literal

import dagster as dg

from nightshift.alerts import deliver, list_alerts, raise_alert
from resources.alerting import Alerting
from resources.database import Database
from resources.families import family_tags

CHANNEL_VARIABLES = {"email": "NIGHTSHIFT_SMTP_HOST and NIGHTSHIFT_SMTP_TO", "whatsapp": "NIGHTSHIFT_ALERT_PHONE"}


class AlertTestConfig(dg.Config):
    channel: Literal["email", "whatsapp"]


@dg.op
def send_test_alert(context: dg.OpExecutionContext, config: AlertTestConfig, database: Database,
                    alerting: Alerting) -> dict:
    channels = alerting.channels(database.engine, only=config.channel)
    if not channels:
        raise dg.Failure(f"no {config.channel} channel: set {CHANNEL_VARIABLES[config.channel]}", allow_retries=False)
    key = f"test:{config.channel}:{context.run_id}"
    raise_alert(database.engine, key, "info", f"test alert through {config.channel}, sent on purpose",
                {"channel": config.channel})
    alert_id = next(a.id for a in list_alerts(database.engine, limit=20) if a.alert_key == key)
    outcomes = deliver(database.engine, alert_id, channels) or []
    if f"{config.channel}!" in outcomes:
        raise dg.Failure(f"the {config.channel} test alert could not be sent (see nightshift alerts list)",
                         allow_retries=False)
    context.add_output_metadata({"channel": config.channel, "alert_id": alert_id})
    return {"alert_id": alert_id, "channels": outcomes}


@dg.job(tags=family_tags("maintenance"), description="Send one test alert to the admin through one channel.")
def alert_test() -> None:
    send_test_alert()
