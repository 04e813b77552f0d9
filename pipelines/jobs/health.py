"""database_health: the database answers, is migrated to head; row counts as UI metadata."""


import dagster as dg

from nightshift.health import check_database
from resources.database import Database
from resources.families import family_tags


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL,
                                   jitter=dg.Jitter.PLUS_MINUS))
def check_database_op(context: dg.OpExecutionContext, database: Database) -> None:
    health = check_database(database.engine)
    table = "\n".join(f"| {name} | {count} |" for name, count in health.row_counts.items())
    metadata = {
        "backend": health.backend,
        "revision": health.revision or "none",
        "head": health.head,
        "latency_ms": dg.MetadataValue.float(health.latency_ms),
        "tables": dg.MetadataValue.md("| table | rows |\n|---|---|\n" + table) if table else "not migrated",
    }
    if not health.at_head:
        raise dg.Failure(
            description=(
                f"The {health.backend} database is at revision {health.revision or 'none'} but the code "
                f"expects {health.head}: run `nightshift db upgrade`."
            ),
            metadata=metadata,
            allow_retries=False,
        )
    context.log.info(f"{health.backend} database at {health.revision}, answered in {health.latency_ms} ms")
    context.add_output_metadata(metadata)


@dg.job(tags=family_tags("maintenance"), description="Check the app database is reachable and migrated.")
def database_health() -> None:
    check_database_op()
