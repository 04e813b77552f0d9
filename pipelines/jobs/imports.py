"""import_dry_run: parse, validate and count against the database without writing anything.

Its outcome holds the raw values of rejected cells (personal data): it stays in the run's memory
(OUTCOME_IO_MANAGER, Dagster's mem_io_manager: every step runs in the run's process), never in Dagster's
storage; the UI gets the masked metadata.
"""

from pathlib import Path

import dagster as dg

from assets.imports import outcome_metadata
from nightshift.config import Settings
from nightshift.imports.service import ImportOptions, ImportOutcome, run_import
from resources.database import Database
from resources.families import family_tags


class DryRunConfig(dg.Config):
    path: str
    profile: str | None = None
    account_id: int | None = None
    strict: bool = False
    create_categories: bool | None = None
    preview_rows: int = 0  # list what the import would do to the first N rows (metadata `changes_preview`)


OUTCOME_IO_MANAGER = "import_outcome_in_memory"


@dg.op(out=dg.Out(ImportOutcome, io_manager_key=OUTCOME_IO_MANAGER))
def dry_run_import(context: dg.OpExecutionContext, config: DryRunConfig, database: Database,
                   settings: dg.ResourceParam[Settings]) -> dg.Output:
    outcome = run_import(
        database.engine, Path(config.path), settings,
        ImportOptions(profile=config.profile, account_id=config.account_id, strict=config.strict,
                      create_categories=config.create_categories, dry_run=True,
                      preview_rows=config.preview_rows),
    )
    context.log.info(f"dry run of {Path(config.path).name}: {outcome.status}: {outcome.message}")
    return dg.Output(outcome, metadata=outcome_metadata(outcome))


@dg.job(tags=family_tags("imports"),
        description="Dry run of an import: what would be inserted / updated / unchanged; writes nothing.")
def import_dry_run() -> None:
    dry_run_import()
