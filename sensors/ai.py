"""Sensors of the ai domain.

ai_import_sensor: each import of businesses that finished with inserted or updated rows starts one
ai_content run for its partition (run_key per import and finish), so one bad file never holds up the
others; a re-import of unchanged rows (nothing inserted or updated) and an import of clients (no text
describes them) start none.
ai_requests_sensor: requests due again (temporary failures, timeouts, quota waits) and abandoned ones
start an ai_retry run (run_key per batch); permanent failures stay failed (the run lists them).
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from nightshift.ai import states
from nightshift.ai.generate import CONTENT_PROFILES, IMPORTED
from nightshift.config import Settings
from nightshift.db.engine import read_transaction, utc
from nightshift.db.schema import imports
from pipelines.jobs.ai import ai_retry
from resources.database import Database
from sensors.in_flight import job_in_flight

# Imports finishing out of commit order are still seen: each tick looks back this far before its cursor
# (run_key dedupes what was already requested).
LOOKBACK = timedelta(minutes=10)
MAX_RUNS_PER_TICK = 50


def ai_import_sensor(job: dg.JobDefinition, settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(name="ai_import_sensor", job=job, minimum_interval_seconds=settings.imports.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Starts ai_content for each import that inserted or updated businesses (not clients).")
    def sensor(context: dg.SensorEvaluationContext, database: Database) -> dg.SensorResult | dg.SkipReason:
        since = datetime.fromisoformat(context.cursor) if context.cursor else datetime(1970, 1, 1, tzinfo=UTC)
        query = (sa.select(imports.c.id, imports.c.partition_key, imports.c.finished_at)
                 .where(imports.c.status.in_(IMPORTED), imports.c.profile.in_(CONTENT_PROFILES),
                        imports.c.dry_run.is_(False),
                        imports.c.partition_key.is_not(None), imports.c.finished_at >= since - LOOKBACK,
                        (imports.c.inserted + imports.c.updated) > 0)
                 .order_by(imports.c.finished_at, imports.c.id).limit(MAX_RUNS_PER_TICK))
        with read_transaction(database.engine) as conn:
            rows = conn.execute(query).all()
        if not rows:
            return dg.SkipReason("no finished import with inserted or updated businesses since the last tick")
        newest = max(utc(row.finished_at) for row in rows)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"ai_content:{row.id}:{utc(row.finished_at).isoformat()}",
                                        partition_key=row.partition_key,
                                        tags={"nightshift/import_id": str(row.id)}) for row in rows],
            cursor=max(newest, since).isoformat(),
        )

    return sensor


def ai_requests_sensor(settings: Settings) -> dg.SensorDefinition:
    # The job by name, as outbox_sensor: given the object, resolving the code location rebuilds the sensor
    # around it and Dagster warns on stderr of every CLI command.
    @dg.sensor(name="ai_requests_sensor", job_name=ai_retry.name,
               minimum_interval_seconds=settings.ai.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Re-requests AI requests due again (temporary failures, timeouts, quota waits) and "
                           "abandoned ones; permanent failures stay failed.")
    def sensor(context: dg.SensorEvaluationContext, database: Database) -> dg.RunRequest | dg.SkipReason:
        due = states.due_requests(database.engine, max_attempts=settings.ai.max_attempts)
        abandoned = states.lease_expired(database.engine)
        if not due and not abandoned:
            return dg.SkipReason("no AI request is due again")
        if job_in_flight(context.instance, ai_retry.name):
            return dg.SkipReason(f"{len(due)} due, {len(abandoned)} abandoned: an ai_retry run is already on it")
        # The batch is what it holds now (a request changes its updated_at or claim token each time it is
        # taken), so a later batch never repeats the key of an earlier one.
        batch = json.dumps([[row["id"], str(row["updated_at"])] for row in due] + abandoned)
        return dg.RunRequest(run_key=f"ai_retry:{hashlib.sha256(batch.encode()).hexdigest()[:24]}",
                             run_config={"ops": {"generate_ai_content": {"config": {"retry_due": True}}}},
                             tags={"nightshift/ai_due": str(len(due)), "nightshift/ai_abandoned": str(len(abandoned))})

    return sensor
